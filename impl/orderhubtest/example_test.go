package orderhubtest_test

import (
	"context"
	"fmt"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/orderhubtest"
)

// An orderhub for a program or an example: create an order through the
// operator API, complete it as the partner, and read the signed answer (a
// call whose answer orderhub did not sign fails).
func Example() {
	ctx := context.Background()
	hub, err := orderhubtest.Start(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer hub.Close()

	if _, err := hub.Ops.PutOrderWithResponse(ctx, "pds_1", models.PutOrderRequest{PosOrderID: "pos-1", OrderStatus: models.OrderStatusReady}); err != nil {
		fmt.Println(err)
		return
	}
	res, err := hub.Client.NotifyOrderCompletionWithResponse(ctx, nil,
		models.NotifyOrderCompletionRequest{RequestID: "pds_1_1717200900", RequestOrderID: "pds_1"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.JSON200.Result.ResultStatus, res.JSON200.Result.ResultCode)
	// Output: S SUCCESS
}
