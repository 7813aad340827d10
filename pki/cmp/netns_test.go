package cmp

import (
	"testing"

	"github.com/pkiagent/pkiagent/internal/netnstest"
)

func inNetns(tb testing.TB, args ...string) bool { return netnstest.InNetns(tb, args...) }

type mockFiles = netnstest.MockFiles

func startMock(tb testing.TB, f mockFiles, rspCert string, extra ...string) string {
	return netnstest.StartCMPMock(tb, f, rspCert, extra...)
}
