package override

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/skiffdev/skiff/internal/fleet/api/v1alpha1"
)

// image is a parsed image reference: [registry/]repository[:tag][@digest].
type image struct {
	registry, repository, tag, digest string
}

// parseImage splits s; it does not validate or normalise.
func parseImage(s string) image {
	var im image
	if i := strings.IndexByte(s, '@'); i >= 0 {
		s, im.digest = s[:i], s[i+1:]
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		if first := s[:i]; strings.ContainsAny(first, ".:") || first == "localhost" {
			im.registry, s = first, s[i+1:]
		}
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		s, im.tag = s[:i], s[i+1:]
	}
	im.repository = s
	return im
}

func (im image) String() string {
	s := im.repository
	if im.registry != "" {
		s = im.registry + "/" + s
	}
	if im.tag != "" {
		s += ":" + im.tag
	}
	if im.digest != "" {
		s += "@" + im.digest
	}
	return s
}

// rewrite applies one image overrider to the reference s.
func rewrite(s string, o v1alpha1.ImageOverrider) (string, error) {
	im := parseImage(s)
	switch o.Component {
	case v1alpha1.Registry:
		switch o.Operator {
		case v1alpha1.OverriderOpAdd:
			im.registry += o.Value
		case v1alpha1.OverriderOpReplace:
			im.registry = o.Value
		case v1alpha1.OverriderOpRemove:
			im.registry = ""
		default:
			return "", badOperator(o.Operator)
		}
	case v1alpha1.Repository:
		switch o.Operator {
		case v1alpha1.OverriderOpAdd:
			im.repository += o.Value
		case v1alpha1.OverriderOpReplace:
			im.repository = o.Value
		case v1alpha1.OverriderOpRemove:
			return "", errors.New("the repository cannot be removed")
		default:
			return "", badOperator(o.Operator)
		}
	case v1alpha1.Tag:
		im.digest = ""
		switch o.Operator {
		case v1alpha1.OverriderOpAdd:
			im.tag += o.Value
		case v1alpha1.OverriderOpReplace:
			if strings.Contains(o.Value, ":") {
				im.tag, im.digest = "", o.Value
			} else {
				im.tag = o.Value
			}
		case v1alpha1.OverriderOpRemove:
			im.tag = ""
		default:
			return "", badOperator(o.Operator)
		}
	default:
		return "", fmt.Errorf("component %q: want Registry, Repository or Tag", o.Component)
	}
	if im.repository == "" {
		return "", fmt.Errorf("image %q would have no repository", s)
	}
	return im.String(), nil
}

func badOperator(op v1alpha1.OverriderOperator) error {
	return fmt.Errorf("operator %q: want add, replace or remove", op)
}

// overrideImages applies o to the image at its predicate's path, or to
// every container's and init container's image of obj's pod template.
func overrideImages(obj *unstructured.Unstructured, o v1alpha1.ImageOverrider) error {
	if o.Predicate != nil {
		tokens, err := parsePointer(o.Predicate.Path)
		if err != nil {
			return fmt.Errorf("path %q: %w", o.Predicate.Path, err)
		}
		parent, key, err := resolve(obj.Object, tokens)
		if err != nil {
			return fmt.Errorf("path %q: %w", o.Predicate.Path, err)
		}
		s, ok := get(parent, key).(string)
		if !ok {
			return fmt.Errorf("path %q: not a string", o.Predicate.Path)
		}
		out, err := rewrite(s, o)
		if err != nil {
			return fmt.Errorf("path %q: %w", o.Predicate.Path, err)
		}
		set(parent, key, out)
		return nil
	}
	spec := podSpec(obj)
	if spec == nil {
		return nil
	}
	for _, field := range []string{"containers", "initContainers"} {
		for i, c := range containers(spec, field) {
			s, ok := c["image"].(string)
			if !ok {
				continue
			}
			out, err := rewrite(s, o)
			if err != nil {
				return fmt.Errorf("path %q: %w", "/"+strings.Join(podSpecPath(obj.GetKind()), "/")+"/"+field+"/"+strconv.Itoa(i)+"/image", err)
			}
			c["image"] = out
		}
	}
	return nil
}
