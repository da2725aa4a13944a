package httpapi

import (
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/signature"
)

// publicKeys serves GET /public-keys: the keys that verify orderhub's
// answers, the current one first, then the earlier versions the operator
// lists (a replayed answer keeps the signature it was first made with). The
// document is made once: the keys do not change while orderhub runs.
func publicKeys(e *echo.Echo, current *rsa.PublicKey, version int, earlier map[int]*rsa.PublicKey) error {
	doc := models.PublicKeys{Keys: []models.PublicKey{}}
	add := func(v int, k *rsa.PublicKey, isCurrent bool) error {
		text, err := signature.MarshalPublicKey(k)
		if err != nil {
			return fmt.Errorf("httpapi: public key version %d: %w", v, err)
		}
		doc.Keys = append(doc.Keys, models.PublicKey{KeyVersion: v, Current: isCurrent, PublicKey: text})
		return nil
	}
	if err := add(version, current, true); err != nil {
		return err
	}
	versions := make([]int, 0, len(earlier))
	for v := range earlier {
		versions = append(versions, v)
	}
	slices.Sort(versions)
	slices.Reverse(versions) // the newest first
	for _, v := range versions {
		if err := add(v, earlier[v], false); err != nil {
			return err
		}
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	e.GET("/public-keys", func(c echo.Context) error {
		return c.JSONBlob(http.StatusOK, body)
	})
	return nil
}
