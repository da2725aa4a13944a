package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/domain"
	"github.com/orderhub/orderhub/impl/ratelimit"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/openapi"
)

// The messages of the result codes. UNKNOWN_EXCEPTION's is Ant's own text.
const (
	msgSuccess          = "success"
	msgUnknownException = "An API calling is failed, which is caused by unknown reasons."
)

// Errors of the HTTP layer itself; the business and storage errors come from
// domain and store.
var (
	errInvalidAPI       = errors.New("the called API is invalid or not active")
	errMethodNotAllowed = errors.New("method not allowed")
	errAccessDenied     = errors.New("access denied")
	errInvalidSignature = errors.New("invalid signature")
	errBodyTooLarge     = errors.New("request body too large")
	errBodyTooSlow      = errors.New("request body did not arrive in time")
)

// usualMessage is the text a result code carries where nothing more
// specific is said (a PARAM_ILLEGAL names the field at fault instead): the
// table's, and that of an injected answer (faults) whose rule gives none.
func usualMessage(code models.ResultCode) string {
	switch code {
	case models.ResultCodeSuccess:
		return msgSuccess
	case models.ResultCodeParamIllegal:
		return "The request parameters are illegal."
	case models.ResultCodeInvalidAPI:
		return "The called API is invalid or not active."
	case models.ResultCodeInvalidSignature:
		return "The signature is invalid."
	case models.ResultCodeAccessDenied:
		return "Access is denied."
	case models.ResultCodeRequestTrafficExceedLimit:
		return "The request traffic exceeds the limit."
	case models.ResultCodeOrderNotExist:
		return "The order does not exist."
	case models.ResultCodeOrderStatusInvalid:
		return "The order status does not allow this change."
	case models.ResultCodeRepeatReqInconsistent:
		return "The requestId was already used with a different request body."
	case models.ResultCodeProcessFail:
		return "The business process failed."
	case models.ResultCodeUnknownException:
		return msgUnknownException
	}
	return string(code)
}

// statusOf is the resultStatus a result code always comes with.
func statusOf(code models.ResultCode) models.ResultStatus {
	switch code {
	case models.ResultCodeSuccess:
		return models.ResultStatusSuccess
	case models.ResultCodeUnknownException:
		return models.ResultStatusUnknown
	}
	return models.ResultStatusFailure
}

// paramError is a PARAM_ILLEGAL with a message naming the fields at fault,
// never their values.
type paramError struct{ msg string }

func (e *paramError) Error() string { return e.msg }

// outcome is what one error means to the caller.
type outcome struct {
	result models.Result
	// opsHTTP is the HTTP status on the operator API; the partner APIs
	// answer 200 (the result carries the outcome) except where partnerHTTP says.
	opsHTTP     int
	partnerHTTP int
}

// final reports whether the outcome is a final failure (F): an idempotent
// request stores it and replays it.
func (o outcome) final() bool { return o.result.ResultStatus == models.ResultStatusFailure }

// outcomeOf is the one table from errors to result envelopes, HTTP statuses
// included. An error it does not know is UNKNOWN_EXCEPTION, and known is
// false: log the cause.
func outcomeOf(err error) (o outcome, known bool) {
	f := func(code models.ResultCode, msg string, opsHTTP int) outcome {
		return outcome{models.Result{ResultStatus: models.ResultStatusFailure, ResultCode: code, ResultMessage: msg}, opsHTTP, http.StatusOK}
	}
	usual := func(code models.ResultCode, opsHTTP int) outcome { return f(code, usualMessage(code), opsHTTP) }
	var pe *paramError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &pe):
		return f(models.ResultCodeParamIllegal, pe.msg, http.StatusBadRequest), true
	case errors.Is(err, domain.ErrExtendInfoTooLong):
		return f(models.ResultCodeParamIllegal, "extendInfo: exceeds 2048 characters serialised", http.StatusBadRequest), true
	case errors.Is(err, errBodyTooLarge):
		o := f(models.ResultCodeParamIllegal, "request body is too large", http.StatusRequestEntityTooLarge)
		o.partnerHTTP = http.StatusRequestEntityTooLarge
		return o, true
	case errors.Is(err, errBodyTooSlow):
		// The caller's fault, not the service's: not a U to retry as is.
		o := f(models.ResultCodeParamIllegal, "the request body did not arrive in time", http.StatusRequestTimeout)
		o.partnerHTTP = http.StatusRequestTimeout
		return o, true
	case errors.Is(err, errInvalidAPI):
		return usual(models.ResultCodeInvalidAPI, http.StatusNotFound), true
	case errors.Is(err, errMethodNotAllowed):
		o := f(models.ResultCodeInvalidAPI, "The HTTP method is not allowed on this path.", http.StatusMethodNotAllowed)
		o.partnerHTTP = http.StatusMethodNotAllowed
		return o, true
	case errors.Is(err, errInvalidSignature):
		// Never says what was expected: the cause is only logged.
		return usual(models.ResultCodeInvalidSignature, http.StatusUnauthorized), true
	case errors.Is(err, errAccessDenied):
		return usual(models.ResultCodeAccessDenied, http.StatusUnauthorized), true
	case errors.Is(err, ratelimit.ErrLimited):
		return usual(models.ResultCodeRequestTrafficExceedLimit, http.StatusTooManyRequests), true
	case errors.Is(err, store.ErrNoAnswer):
		return f(resultCodeAnswerNotExist, "No answer is stored for this requestId (never answered, answered U, still in progress, or expired).", http.StatusNotFound), true
	case errors.Is(err, store.ErrNotFound):
		return usual(models.ResultCodeOrderNotExist, http.StatusNotFound), true
	case errors.Is(err, domain.ErrOrderStatusInvalid):
		return usual(models.ResultCodeOrderStatusInvalid, http.StatusConflict), true
	case errors.Is(err, domain.ErrRefundDecrease), errors.Is(err, domain.ErrRefundCurrency):
		return f(models.ResultCodeProcessFail, err.Error(), http.StatusConflict), true
	case errors.Is(err, store.ErrRequestMismatch):
		return usual(models.ResultCodeRepeatReqInconsistent, http.StatusConflict), true
	case errors.Is(err, store.ErrInProgress):
		// A retry, not a failure: the first request may still succeed.
		return unknown(), true
	case errors.As(err, &he):
		return outcomeOf(statusError(he))
	}
	return unknown(), false
}

func unknown() outcome {
	return outcome{models.Result{ResultStatus: models.ResultStatusUnknown, ResultCode: models.ResultCodeUnknownException, ResultMessage: msgUnknownException}, http.StatusServiceUnavailable, http.StatusOK}
}

// statusError names the error behind an HTTP error raised by echo (routing),
// the validator or the generated wrappers (binding): the cause it carries
// when the table knows it, else the error its status means.
func statusError(he *echo.HTTPError) error {
	if he.Internal != nil {
		if _, known := outcomeOf(he.Internal); known {
			return he.Internal
		}
	}
	switch he.Code {
	case http.StatusNotFound:
		return errInvalidAPI
	case http.StatusMethodNotAllowed:
		return errMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return errBodyTooLarge
	case http.StatusUnauthorized, http.StatusForbidden:
		return errAccessDenied
	case http.StatusBadRequest, http.StatusUnsupportedMediaType:
		// Binding errors quote the input; say only what is wrong.
		return &paramError{"request body or headers do not match the contract"}
	}
	return errors.New(he.Error())
}

// errorHandler answers err with its envelope, signed on the partner APIs:
// echo's HTTPErrorHandler.
func errorHandler(seal sealer, log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		o, known := outcomeOf(err)
		f := factsOf(c)
		f.noteResult(o.result)
		if !known {
			log.ErrorContext(c.Request().Context(), "unexpected error", "err", err, "path", c.Request().URL.Path)
		}
		status := o.partnerHTTP
		if f.kind == openapi.Operator {
			status = o.opsHTTP
		}
		if status == http.StatusMethodNotAllowed {
			// The router knows the path's methods; orderhub does not serve
			// OPTIONS, which echo lists first.
			if allow, ok := c.Get(echo.ContextKeyHeaderAllow).(string); ok {
				c.Response().Header().Set(echo.HeaderAllow, strings.TrimPrefix(allow, http.MethodOptions+", "))
			}
		}
		a, err := render(status, models.ErrorResponse{Result: o.result})
		if err == nil && signed(f.kind) {
			if err = seal.seal(f, a); err != nil {
				// Unsigned, but an answer: a U the caller retries.
				log.ErrorContext(c.Request().Context(), "signing an error response", "err", err)
				u := unknown().result
				f.noteResult(u)
				a, err = render(http.StatusOK, models.ErrorResponse{Result: u})
			}
		}
		if err == nil {
			err = a.write(c.Response())
		}
		if err != nil {
			log.ErrorContext(c.Request().Context(), "writing an error response", "err", err)
		}
	}
}

// success is the S result.
func success() models.Result {
	return models.Result{ResultStatus: models.ResultStatusSuccess, ResultCode: models.ResultCodeSuccess, ResultMessage: msgSuccess}
}
