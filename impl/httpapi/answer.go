package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"
)

// answer is a partner answer exactly as it leaves: status, headers (signed)
// and body. The partner handlers return it as their typed response, errors
// are written as one, and an idempotent request stores it whole, so that a
// replay sends the very bytes, Response-Time and Signature of the first.
// Its JSON form is the stored record.
type answer struct {
	Status int         `json:"status"`
	Header http.Header `json:"header"`
	Body   []byte      `json:"body"`
}

// render makes the answer of v as JSON.stringify would write it: compact, no
// HTML escapes, no final newline. A hop that parses and re-writes JSON (a
// gateway, Prism's proxy) then writes the same bytes back, and the
// signature over them survives it where the content allows.
func render(status int, v any) (*answer, error) {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	return &answer{Status: status, Header: h, Body: bytes.TrimSuffix(body.Bytes(), []byte("\n"))}, nil
}

// write sends the answer. The response already carries this request's own
// X-Request-Id; a stored answer has none.
func (a *answer) write(w http.ResponseWriter) error {
	for k, v := range a.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(a.Status)
	_, err := w.Write(a.Body)
	return err
}

// The typed responses of the partner operations: each sends the answer.
func (a *answer) VisitNotifyOrderCompletionResponse(w http.ResponseWriter) error {
	return a.write(w)
}

func (a *answer) VisitInquireOrderDetailResponse(w http.ResponseWriter) error {
	return a.write(w)
}

func (a *answer) VisitNotifyDeliveryAuditResultResponse(w http.ResponseWriter) error {
	return a.write(w)
}

func (a *answer) VisitNotifyOrderChangeResponse(w http.ResponseWriter) error {
	return a.write(w)
}
