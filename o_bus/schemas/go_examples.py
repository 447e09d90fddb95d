"""Go examples for the guide, with the official client (``github.com/nats-io/nats.go``)."""

from __future__ import annotations

from typing import Final

__all__ = ["GO_EVENTS", "GO_REQUEST"]

GO_REQUEST: Final = """\
```go
nc, err := nats.Connect(nats.DefaultURL)
if err != nil {
	log.Fatal(err)
}
defer nc.Drain()

msg := nats.NewMsg("o.req.counter")
msg.Header.Set("ce-id", "invoice-4711-add") // keep it: re-send with it after a timeout
msg.Header.Set("ce-type", "increment")
msg.Header.Set("ce-source", "billing/invoicer")
msg.Header.Set("ce-specversion", "1.0")
msg.Header.Set("Content-Type", "application/json")
msg.Data = []byte(`{"by": 5}`)

reply, err := nc.RequestMsg(msg, 5*time.Second)
if err != nil {
	log.Fatal(err) // nats.ErrTimeout: re-send the same message, same ce-id
}
fmt.Println(reply.Header.Get("O-Status"), string(reply.Data))
```"""

GO_EVENTS: Final = """\
```go
ctx := context.Background()
js, err := jetstream.New(nc)
if err != nil {
	log.Fatal(err)
}
var lastStreamSeq uint64 // stream sequence of the last event handled; 0: none yet
cons, err := js.OrderedConsumer(ctx, "O_EVT_counter", jetstream.OrderedConsumerConfig{
	FilterSubjects: []string{"o.evt.counter"},
	DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
	OptStartSeq:    lastStreamSeq + 1,
})
if err != nil {
	log.Fatal(err)
}
cc, err := cons.Consume(func(m jetstream.Msg) {
	h := m.Headers()
	fmt.Println(h.Get("ce-sequence"), h.Get("ce-type"), string(m.Data()))
	if meta, err := m.Metadata(); err == nil {
		lastStreamSeq = meta.Sequence.Stream // store it to resume from there later
	}
})
if err != nil {
	log.Fatal(err)
}
defer cc.Stop() // events arrive in the callback until then
```"""
