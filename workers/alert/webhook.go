package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// HeaderIdempotencyKey carries the alert's id on every POST, so a
// receiver can drop the copy a retry after a lost response sends.
const HeaderIdempotencyKey = "Idempotency-Key"

// WebhookConfig configures the deliverer of one webhook target.
type WebhookConfig struct {
	Target *pipeline.Webhook
	// Client sends the POSTs. Default: a client with the target's timeout.
	Client *http.Client
	Logger zerolog.Logger
}

// Webhook POSTs alerts to one target. A 2xx answer delivers; a timeout, a
// connection error, 408, 429 or a 5xx is retried with backoff (after the
// Retry-After the receiver asks for, if any); any other answer is
// permanent. Either way an alert that cannot be delivered ends in the
// dead-letter stream with the reason, never dropped.
type Webhook struct {
	url     string
	headers http.Header
	client  *http.Client
	log     zerolog.Logger
}

// NewWebhook builds the handler of a webhook deliverer. ${VAR} in the URL
// and header values are expanded from the environment now.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	t := cfg.Target
	if t == nil {
		return nil, fmt.Errorf("%w: no webhook target", workers.ErrInvalidConfig)
	}
	raw := os.ExpandEnv(t.URL)
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: webhook %s: URL does not parse (after expanding ${VAR}s)", workers.ErrInvalidConfig, t.Name)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: webhook %s: %q is not an http(s) URL once its ${VAR}s are expanded", workers.ErrInvalidConfig, t.Name, t.URL)
	}
	h := http.Header{}
	for k, v := range t.Headers {
		h.Set(k, os.ExpandEnv(v))
	}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "jetfleet-webhook")
	client := cfg.Client
	if client == nil {
		timeout := t.Timeout
		if timeout <= 0 {
			timeout = pipeline.DefaultWebhookTimeout
		}
		client = &http.Client{Timeout: timeout}
	}
	return &Webhook{
		url: raw, headers: h, client: client,
		log: cfg.Logger.With().Str("step", subjects.StepWebhook.Name).Str("webhook", t.Name).Logger(),
	}, nil
}

// Handle POSTs one alert.
func (w *Webhook) Handle(ctx context.Context, rec workers.Record) ([]workers.Output, error) {
	var a struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(rec.Data, &a); err != nil {
		return nil, workers.Permanentf("not an alert: %v", err)
	}
	key := a.ID
	if key == "" {
		key = subjects.DeriveMsgID(rec.MsgID, subjects.StepWebhook.Name, rec.Index)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(rec.Data))
	if err != nil {
		return nil, workers.Permanent(err)
	}
	req.Header = w.headers.Clone()
	req.Header.Set(HeaderIdempotencyKey, key)
	resp, err := w.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may hold a secret; the reason need not
		}
		return nil, fmt.Errorf("POST webhook: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_ = resp.Body.Close()
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		w.log.Debug().Str("alert", key).Int("status", code).Msg("delivered")
		return nil, nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		err := fmt.Errorf("webhook answered %d: %s", code, bytes.TrimSpace(body))
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return nil, workers.RetryAfter(d, err)
		}
		return nil, err
	default:
		return nil, workers.Permanentf("webhook answered %d: %s", code, bytes.TrimSpace(body))
	}
}

// retryAfter reads a Retry-After header, delay-seconds or an HTTP date
// (RFC 9110 allows both), as a wait from now capped at 5 minutes; a date
// already past means retry at once.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	const most = 5 * time.Minute
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		if n < 0 {
			return 0, false
		}
		return min(time.Duration(n)*time.Second, most), true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(at.Sub(now), 0), most), true
}

// WebhookSubjects are the alert subjects a target receives: those of the
// rules that name it.
func WebhookSubjects(spec *pipeline.Spec, target string) []string {
	var subs []string
	for _, a := range spec.Alerts {
		for _, w := range a.Webhooks {
			if w == target {
				subs = append(subs, subjects.Alert(a.Name))
				break
			}
		}
	}
	return subs
}
