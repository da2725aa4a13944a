package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/generated/server"
	"github.com/orderhub/orderhub/openapi"
)

// resultCodeAnswerNotExist is the operator API's own code for a lookup that
// finds no stored answer; none of the partner result codes says that (the
// contract's AnswerNotExistResult).
const resultCodeAnswerNotExist models.ResultCode = "ANSWER_NOT_EXIST"

// GetStoredAnswer answers support's first question, "what did we answer?":
// the answer stored for a notification, as its repeats are sent it.
func (h *handlers) GetStoredAnswer(ctx context.Context, req server.GetStoredAnswerRequestObject) (server.GetStoredAnswerResponseObject, error) {
	p := req.Params
	op, ok := h.catalog.OperationByID(p.Operation)
	if !ok || op.Kind != openapi.Partner || !op.Idempotent {
		return nil, &paramError{"query operation: not a notification idempotent on requestId; one of " + strings.Join(h.catalog.IdempotentIDs(), ", ")}
	}
	record, err := h.st.Answer(ctx, op.ID, p.ClientID, p.RequestID)
	if err != nil {
		return nil, err
	}
	var a answer
	if err := json.Unmarshal(record, &a); err != nil {
		return nil, fmt.Errorf("decoding a stored answer: %w", err)
	}
	headers := make(map[string]string, len(a.Header))
	for name, values := range a.Header {
		headers[name] = strings.Join(values, ", ")
	}
	return storedAnswer{
		Operation: op.ID,
		ClientID:  p.ClientID,
		RequestID: p.RequestID,
		Status:    a.Status,
		Headers:   headers,
		Body:      a.Body,
	}, nil
}

// storedAnswer is sent as render writes an answer, without HTML escapes, so
// that the body's bytes, which the stored Signature signs, arrive as they
// were sent; the generated response's encoder would escape <, > and &.
type storedAnswer models.StoredAnswer

func (s storedAnswer) VisitGetStoredAnswerResponse(w http.ResponseWriter) error {
	a, err := render(http.StatusOK, models.StoredAnswer(s))
	if err != nil {
		return err
	}
	return a.write(w)
}
