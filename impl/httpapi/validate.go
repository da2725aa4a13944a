package httpapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"
	echomw "github.com/oapi-codegen/echo-middleware"

	"github.com/orderhub/orderhub/openapi"
)

// maxMessage bounds resultMessage (the contract's maxLength).
const maxMessage = 1024

// validator checks every request against the contract before routing it to a
// handler. Violations become one PARAM_ILLEGAL naming all the fields at fault.
func validator(cat *openapi.Catalog, adminToken string) echo.MiddlewareFunc {
	return echomw.OapiRequestValidatorWithOptions(cat.Doc(), &echomw.Options{
		Options: openapi3filter.Options{
			MultiError:          true,
			SkipSettingDefaults: true, // the body is the caller's, byte for byte
			KeepValidatedValue:  true, // handlers bind exactly what was validated
			AuthenticationFunc:  authenticate(adminToken),
		},
		// Keep kin-openapi's errors whole; ErrorHandler describes them.
		MultiErrorHandler: func(me openapi3.MultiError) *echo.HTTPError {
			return &echo.HTTPError{Code: http.StatusBadRequest, Internal: me}
		},
		ErrorHandler: func(_ echo.Context, he *echo.HTTPError) error {
			switch he.Code {
			case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusForbidden, http.StatusUnauthorized:
				return he // what the status means is the error table's
			}
			if he.Internal != nil {
				return requestProblem(he.Internal)
			}
			return he
		},
	})
}

// authenticate checks the contract's security schemes by name. The
// operator API's bearer token is checked here; an empty configured token
// refuses every call (the operator API is then off). The partner schemes
// (clientId, requestTime, signature) were checked before the validator
// runs, by verifyRequests, on the raw bytes: that order is what gives a
// missing or bad signature INVALID_SIGNATURE rather than a validation
// error, and TestSignatureCheckedBeforeValidation pins it.
func authenticate(token string) openapi3filter.AuthenticationFunc {
	return func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
		if in.SecuritySchemeName != "adminToken" {
			return nil // a partner scheme: verified already
		}
		req := in.RequestValidationInput.Request
		got, ok := strings.CutPrefix(req.Header.Get(echo.HeaderAuthorization), "Bearer ")
		switch {
		case token == "":
			factsFrom(req.Context()).reason = "operator_api_off"
			return errAccessDenied
		case !ok:
			factsFrom(req.Context()).reason = "no_bearer_token"
			return errAccessDenied
		case subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1:
			factsFrom(req.Context()).reason = "wrong_bearer_token"
			return errAccessDenied
		}
		return nil
	}
}

// requestProblem turns what kin-openapi found into the error the envelope
// table knows: ACCESS_DENIED for security, else PARAM_ILLEGAL.
func requestProblem(err error) error {
	var problems []string
	var denied bool
	var walk func(error)
	walk = func(err error) {
		// Type switch, not errors.As: MultiError.As matches any element,
		// and a RequestError unwraps to the MultiError of its schema errors.
		switch e := err.(type) {
		case openapi3.MultiError:
			for _, inner := range e {
				walk(inner)
			}
		case *openapi3filter.SecurityRequirementsError:
			denied = true
		case *openapi3filter.RequestError:
			problems = append(problems, describeRequestError(e)...)
		default:
			problems = append(problems, "request does not match the contract")
		}
	}
	walk(err)
	if denied {
		return errAccessDenied
	}
	return &paramError{joinProblems(problems)}
}

func describeRequestError(re *openapi3filter.RequestError) []string {
	where := "body"
	if re.Parameter != nil {
		where = fmt.Sprintf("%s %s", re.Parameter.In, re.Parameter.Name)
	}
	var schemaErrs []*openapi3.SchemaError
	collectSchemaErrors(re.Err, &schemaErrs)
	if len(schemaErrs) > 0 {
		out := make([]string, 0, len(schemaErrs))
		for _, se := range schemaErrs {
			field := where
			if p := se.JSONPointer(); len(p) > 0 && re.Parameter == nil {
				field = fieldName(p)
			} else if name := quoted.FindString(se.Reason); name != "" && isPropertyRule(se.SchemaField) {
				// kin-openapi names an unsupported property only in its reason.
				field = fieldName([]string{strings.Trim(name, `"`)})
			}
			out = append(out, field+": "+schemaReason(se))
		}
		return out
	}
	var pe *openapi3filter.ParseError
	switch {
	case errors.Is(re.Err, openapi3filter.ErrInvalidRequired) || errors.Is(re.Err, openapi3filter.ErrInvalidEmptyValue):
		return []string{where + ": is required"}
	case errors.As(re.Err, &pe):
		return []string{where + ": is not valid JSON"}
	case re.RequestBody != nil && strings.Contains(re.Reason, "Content-Type"):
		return []string{"header Content-Type: must be application/json"}
	case re.RequestBody != nil && re.Err == nil:
		// kin-openapi's reasons here name the content type, never the body.
		return []string{"body: " + re.Reason}
	}
	return []string{where + ": is invalid"}
}

func isPropertyRule(field string) bool {
	return field == "properties" || field == "additionalProperties"
}

func collectSchemaErrors(err error, out *[]*openapi3.SchemaError) {
	var me openapi3.MultiError
	var se *openapi3.SchemaError
	switch {
	case errors.As(err, &me):
		for _, e := range me {
			collectSchemaErrors(e, out)
		}
	case errors.As(err, &se):
		*out = append(*out, se)
	}
}

// fieldName renders a JSON pointer as a dotted field path, each part cut
// short: unknown property names come from the caller.
func fieldName(pointer []string) string {
	parts := make([]string, len(pointer))
	for i, p := range pointer {
		parts[i] = clip(p, 64)
	}
	return strings.Join(parts, ".")
}

var quoted = regexp.MustCompile(`"[^"]*"`)

// schemaReason says what rule a value broke, from the schema alone: the
// value itself is never quoted back.
func schemaReason(se *openapi3.SchemaError) string {
	s := se.Schema
	switch se.SchemaField {
	case "required":
		return "is required"
	case "maxLength":
		if s != nil && s.MaxLength != nil {
			return fmt.Sprintf("exceeds the maximum length %d", *s.MaxLength)
		}
	case "minLength":
		if s == nil || s.MinLength <= 1 {
			return "must not be empty"
		}
		return fmt.Sprintf("is shorter than %d", s.MinLength)
	case "type":
		if s != nil && s.Type != nil {
			return "must be of type " + strings.Join(s.Type.Slice(), " or ")
		}
	case "enum":
		if s != nil {
			vals := make([]string, len(s.Enum))
			for i, v := range s.Enum {
				vals[i] = fmt.Sprint(v)
			}
			return "must be one of " + strings.Join(vals, ", ")
		}
	case "nullable":
		return "must not be null"
	case "properties", "additionalProperties":
		return "is not an allowed field"
	case "format":
		if s != nil {
			return "must be in the format " + s.Format
		}
	case "maxItems":
		return "has too many items"
	}
	// Unknown rule: keep kin-openapi's reason without anything quoted.
	return quoted.ReplaceAllString(se.Reason, "…")
}

func joinProblems(problems []string) string {
	seen := make(map[string]bool, len(problems))
	uniq := problems[:0]
	for _, p := range problems {
		if !seen[p] {
			seen[p] = true
			uniq = append(uniq, p)
		}
	}
	return clip(strings.Join(uniq, "; "), maxMessage)
}

// clip cuts s to at most n bytes, on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	n -= len(mark)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + mark
}
