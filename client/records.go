package client

import (
	"context"
	"net/http"

	"github.com/a8fabric/a8/api"
)

// DeliverRecords sends a sidecar's batch of traced requests' starts and records to the controller
// (POST /api/v1/records). A controller without the records API (Amalgam8's) answers 404 or 405.
func (c *Controller) DeliverRecords(ctx context.Context, b api.RecordBatch) error {
	_, err := c.b.do(ctx, http.MethodPost, "/api/v1/records", nil, nil, b, nil)
	return err
}
