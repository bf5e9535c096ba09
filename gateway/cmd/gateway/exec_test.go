package main

import (
	"os"
	"os/exec"
	"testing"
)

func execSelf(t *testing.T, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainExitCode$")
	cmd.Env = append(append(os.Environ(), "GATEWAY_TEST_MAIN=1"), env...)
	return cmd
}
