package interop

import (
	"fmt"
	"os"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// portcullis is the real server binary, built once by TestMain.
var portcullis proctest.Portcullis

func TestMain(m *testing.M) {
	bin, remove, err := proctest.Build("../cmd/portcullis")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	portcullis = proctest.Portcullis(bin)
	code := m.Run()
	remove()
	os.Exit(code)
}
