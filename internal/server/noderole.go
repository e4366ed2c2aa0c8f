package server

import (
	"context"
	"encoding/json"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// ControlPlaneRoleLabel marks the server's own node, so `kubectl get nodes`
// shows ROLES control-plane there, as kubeadm and k3s clusters do. Kubelets
// may not set node-role labels themselves (NodeRestriction): the server
// sets it with its admin credentials.
const ControlPlaneRoleLabel = "node-role.kubernetes.io/control-plane"

// LabelControlPlaneNode waits for node name to register, then labels it
// with ControlPlaneRoleLabel. It returns once done or when ctx ends.
func (s *Server) LabelControlPlaneNode(ctx context.Context, name string) error {
	client, err := kubernetes.NewForConfig(s.AdminConfig)
	if err != nil {
		return err
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{ControlPlaneRoleLabel: "true"}}})
	var lastErr error
	for {
		_, err := client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsNotFound(err) && (lastErr == nil || lastErr.Error() != err.Error()) {
			s.cfg.Log.Warn("labelling the server's node; retrying", "node", name, "err", err)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}
