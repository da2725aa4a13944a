// Command orderhub serves the D-Store and WorldTrade partner APIs described
// by openapi/orderhub.yaml. orderhub -h lists its settings.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP reloads the clients file. Registered before anything is
	// served, so no SIGHUP can meet its default action (exit).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, hup)
	stop()
	os.Exit(exitStatus(err, os.Stderr))
}

// exitStatus writes err, if any, to stderr and returns the exit status: 0
// when run ended well, 2 when the command line or the configuration is
// refused (a supervisor should not restart it unchanged), 1 otherwise.
func exitStatus(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "orderhub:", err)
	if _, ok := errors.AsType[*configError](err); ok {
		return 2
	}
	if _, ok := errors.AsType[*usageError](err); ok {
		return 2
	}
	return 1
}
