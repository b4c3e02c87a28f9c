package interop

import (
	"fmt"
	"os"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// The real server and resource-server binaries, built once by TestMain.
var (
	portcullis proctest.Portcullis
	userapi    proctest.UserAPI
)

func TestMain(m *testing.M) {
	bin, remove, err := proctest.Build("../cmd/portcullis")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	apiBin, removeUserAPI, err := proctest.Build("../cmd/userapi")
	if err != nil {
		remove()
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	portcullis, userapi = proctest.Portcullis(bin), proctest.UserAPI(apiBin)
	code := m.Run()
	remove()
	removeUserAPI()
	os.Exit(code)
}
