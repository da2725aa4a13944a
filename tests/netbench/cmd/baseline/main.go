// Command baseline is a yardstick for tests/netbench: an echo server that
// answers every POST with one fixed S envelope, either bare (-sign unset) or
// RSA-2048-signed anew for each request with orderhub's own Sealer and no
// signature reuse (-sign names the key). What orderhub adds to a request is
// read against these two on the same machine in the same run.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/labstack/echo/v4"

	"github.com/orderhub/orderhub/impl/buildinfo"
	"github.com/orderhub/orderhub/impl/signature"
)

// envelope is the answer: what orderhub answers a first-time notification.
var envelope = []byte(`{"result":{"resultStatus":"S","resultCode":"SUCCESS","resultMessage":"success"}}`)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	keyFile := flag.String("sign", "", "sign every answer with this RSA private key (PKCS#8 PEM or base64 DER); unset: bare")
	flag.Parse()

	var sealer *signature.Sealer // nil: bare
	if *keyFile != "" {
		text, err := os.ReadFile(*keyFile)
		if err != nil {
			return err
		}
		key, err := signature.ParsePrivateKey(text)
		if err != nil {
			return err
		}
		// No Memo: every answer costs one RSA signature, the ceiling of a
		// server that signs what it answers.
		sealer = &signature.Sealer{Key: key, KeyVersion: 1}
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/*", func(c echo.Context) error {
		req := c.Request()
		// Read the body as orderhub must, so both pay for receiving it.
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return err
		}
		if sealer != nil {
			if _, err := sealer.Seal(c.Response().Header(), req.Method, req.URL.EscapedPath(), req.Header.Get("Client-Id"), envelope, nil); err != nil {
				return err
			}
		}
		return c.Blob(http.StatusOK, "application/json", envelope)
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	mode := "bare"
	if sealer != nil {
		mode = "sign"
	}
	// The same start-up line as orderhub's, read the same way by the harness.
	line, _ := json.Marshal(map[string]string{"msg": "listening", "url": "http://" + ln.Addr().String(), "mode": mode, "crypto": buildinfo.Read().Crypto})
	fmt.Println(string(line))

	srv := &http.Server{Handler: e}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-stop
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}
