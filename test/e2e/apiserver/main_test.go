package apiserver

import (
	"testing"

	"github.com/skiffdev/skiff/test/e2e/e2eutil"
)

func TestMain(m *testing.M) { e2eutil.Main(m) }
