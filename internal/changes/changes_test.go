package changes

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

func TestNotifyCoalesces(t *testing.T) {
	s := New()
	for range 5 {
		s.Notify()
	}
	<-s.C()
	select {
	case <-s.C():
		t.Fatal("five notifications before a read gave two signals, want one")
	default:
	}
}

func TestWatchSignalsInformerEvents(t *testing.T) {
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	s := New()
	if err := s.Watch(factory.Core().V1().ConfigMaps().Informer()); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer func() { close(stop); factory.Shutdown() }()
	factory.Start(stop)
	factory.WaitForCacheSync(stop)
	if _, err := client.CoreV1().ConfigMaps("default").Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	<-s.C() // the add arrives; a missing signal ends the test by its timeout
}
