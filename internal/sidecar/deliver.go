package sidecar

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/sidecar/records"
)

// newDeliverer returns the deliverer of traced requests' records to the controller, and registers
// its metrics.
func (s *Sidecar) newDeliverer() (*records.Deliverer, error) {
	ctl, err := client.NewController(client.ControllerConfig{URL: s.cfg.Controller.URL, Token: s.cfg.Controller.Token})
	if err != nil {
		return nil, fmt.Errorf("controller URL: %w", err)
	}
	d := records.NewDeliverer(records.DelivererOptions{Send: deliverTo(ctl), Logger: s.log.With("component", "records")})
	for _, m := range []struct {
		name, help string
		fn         func() float64
	}{
		{"a8_sidecar_trace_records_delivered_total", "Starts and records of traced requests delivered to the controller.", func() float64 { return float64(d.Delivered()) }},
		{"a8_sidecar_trace_records_dropped_total", "Starts and records of traced requests dropped: the buffer was full, the controller refused them, or it has no records API.", func() float64 { return float64(d.Dropped()) }},
		{"a8_sidecar_trace_records_delivery_failures_total", "Failed attempts to deliver traced requests' records to the controller (they are retried).", func() float64 { return float64(d.Failures()) }},
	} {
		s.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.name, Help: m.help}, m.fn))
	}
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "a8_sidecar_trace_records_queued",
		Help: "Starts and records of traced requests waiting for delivery to the controller."}, func() float64 { return float64(d.Queued()) }))
	return d, nil
}

// deliverTo sends batches with ctl, telling the deliverer which failures are worth a retry: a
// controller without the records API (404, 405: Amalgam8's) or one that refuses the batch (400,
// 401, 403, 413) will not change its mind.
func deliverTo(ctl *client.Controller) records.SendFunc {
	return func(ctx context.Context, b api.RecordBatch) error {
		err := ctl.DeliverRecords(ctx, b)
		var se *client.StatusError
		if errors.As(err, &se) {
			switch se.Code {
			case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
				return &records.PermanentError{Err: err, Unsupported: true}
			case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
				return &records.PermanentError{Err: err}
			}
		}
		return err
	}
}
