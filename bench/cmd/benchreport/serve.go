package main

import (
	"net"
	"net/http"
)

// serveDir serves dir over HTTP on loopback, as a CA's CRL distribution
// point would.
func serveDir(dir string) (url string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go srv.Serve(l)
	return "http://" + l.Addr().String(), func() { srv.Close() }, nil
}
