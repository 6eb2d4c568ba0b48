package middleware_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/workers/message"
	"github.com/jetfleet/jetfleet/workers/middleware"
)

func TestRecover(t *testing.T) {
	t.Parallel()
	h := message.Chain(func(context.Context, *message.Batch) error { panic("boom") }, middleware.Recover())
	err := h(t.Context(), &message.Batch{})
	var pe *message.PanicError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "boom", pe.Value)
	require.Contains(t, string(pe.Stack), "recover_test.go", "the stack names where it panicked")

	plain := errors.New("plain")
	require.ErrorIs(t, message.Chain(handlerOf(plain, nil), middleware.Recover())(t.Context(), &message.Batch{}), plain, "errors pass unchanged")
}
