package function_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// echofnPath is the test function process (testdata/echofn), built once
// for all tests.
var echofnPath string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sabot-echofn-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	echofnPath = filepath.Join(dir, "echofn")
	build := exec.Command("go", "build", "-o", echofnPath, "./testdata/echofn")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build testdata/echofn: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	// Nothing is ignored: Host.Close waits for its supervisors, exit
	// waiters and processes; sessions' HTTP/2 connections end with their
	// process or with the test servers, closed by t.Cleanup.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			return 1
		}
	}
	return code
}
