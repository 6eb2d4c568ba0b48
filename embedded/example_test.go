package embedded_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/embedded"
)

// Start an in-process JetStream server on a free loopback port, store a
// message in a stream and read it back: what `jetfleet dev` does before
// it starts the fleet.
func Example_start() {
	dir, err := os.MkdirTemp("", "jetfleet-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(embedded.Config{StoreDir: dir, Port: -1, Quiet: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown() // deferred after RemoveAll: runs first

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DEMO", Subjects: []string{"demo.>"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	ack, err := js.Publish(ctx, "demo.hello", []byte("hello, JetStream"))
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := s.GetMsg(ctx, ack.Sequence)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("JetStream enabled:", srv.JetStreamEnabled())
	fmt.Printf("%s #%d on %s: %s\n", ack.Stream, ack.Sequence, m.Subject, m.Data)
	// Output:
	// JetStream enabled: true
	// DEMO #1 on demo.hello: hello, JetStream
}
