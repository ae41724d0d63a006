package sabot

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
)

// Context is what a handler works with while it handles one event of one
// key: the key, the clocks, the key's state (through the declarations), and
// the effects it produces (messages, timers, replies). The effects and state
// writes of all events of an invocation go to the worker together when the
// invocation ends, and only if no handler of it failed: a failed invocation
// has no effect at all.
//
// A Context is valid only during the handler call it is passed to and only on
// that goroutine; do not keep it.
type Context struct {
	ctx   context.Context
	call  *sabotv1.Call
	fn    *function
	key   []byte
	rd    stateReader
	slots []stateSlot

	// The event being handled: a message or a timer.
	msg     *sabotv1.Message
	timer   *sabotv1.FiredTimer
	replied bool

	messages []*sabotv1.OutgoingMessage
	timers   []*sabotv1.TimerChange
	replies  []*sabotv1.Reply
}

// Context is the call's context.Context: it is cancelled when the session
// with the worker ends or the function process stops. Pass it to anything
// the handler does that blocks.
func (c *Context) Context() context.Context { return c.ctx }

// Function is the name of the function being run.
func (c *Context) Function() string { return c.fn.Name }

// Key is the key being handled. Keys are bytes in the protocol; the string
// holds them unchanged.
func (c *Context) Key() string { return string(c.key) }

// EventTime is the event time of the event being handled and whether it has
// one: a message's event time, or an event-time timer's time (processing-time
// timers have none).
func (c *Context) EventTime() (time.Time, bool) {
	switch {
	case c.msg != nil && c.msg.EventTimeMs != nil:
		return time.UnixMilli(c.msg.GetEventTimeMs()), true
	case c.timer != nil && c.timer.GetDomain() == sabotv1.TimeDomain_TIME_DOMAIN_EVENT:
		return time.UnixMilli(c.timer.GetTimestampMs()), true
	}
	return time.Time{}, false
}

// Watermark is the operator's event-time watermark when the worker made the
// call: no event at or before it is expected any more.
func (c *Context) Watermark() time.Time { return time.UnixMilli(c.call.GetWatermarkMs()) }

// ProcessingTime is the worker's clock when it made the call. Use it rather
// than time.Now, so that tests (sabottest) control time.
func (c *Context) ProcessingTime() time.Time { return time.UnixMilli(c.call.GetProcessingTimeMs()) }

// Send sends msg to one of the function's declared outputs (a sink bound by
// the pipeline). It fails with ErrUndeclaredOutput for an output not in
// Function.Outputs. See EncodeMessage for how msg becomes bytes.
func (c *Context) Send(output string, msg any) error {
	if !slices.Contains(c.fn.Outputs, output) {
		return fmt.Errorf("%w: %q (function %q declares %q)", ErrUndeclaredOutput, output, c.fn.Name, c.fn.Outputs)
	}
	b, err := EncodeMessage(msg)
	if err != nil {
		return err
	}
	c.messages = append(c.messages, &sabotv1.OutgoingMessage{
		Target:  &sabotv1.OutgoingMessage_Output{Output: output},
		Payload: b,
	})
	return nil
}

// SendTo sends msg to the function instance at address ("function/key"),
// after delay of processing time (0: as soon as possible). The receiver sees
// this function's address in Message.From. Whether the function exists is
// the worker's to check; a malformed address fails with ErrInvalidAddress.
// Delays are kept in whole milliseconds, rounded up.
func (c *Context) SendTo(address string, msg any, delay time.Duration) error {
	if delay < 0 {
		return fmt.Errorf("sabot: send to %q: negative delay %v", address, delay)
	}
	m, err := c.outgoing(address, msg)
	if err != nil {
		return err
	}
	m.DelayMs = ceilMillis(delay)
	c.messages = append(c.messages, m)
	return nil
}

// SendAtEventTime sends msg to the function instance at address
// ("function/key") when the watermark reaches at; the message carries at as
// its event time.
func (c *Context) SendAtEventTime(address string, msg any, at time.Time) error {
	m, err := c.outgoing(address, msg)
	if err != nil {
		return err
	}
	ms := at.UnixMilli()
	m.AtEventTimeMs = &ms
	c.messages = append(c.messages, m)
	return nil
}

func (c *Context) outgoing(address string, msg any) (*sabotv1.OutgoingMessage, error) {
	if err := checkAddress(address); err != nil {
		return nil, err
	}
	b, err := EncodeMessage(msg)
	if err != nil {
		return nil, err
	}
	return &sabotv1.OutgoingMessage{Target: &sabotv1.OutgoingMessage_Address{Address: address}, Payload: b}, nil
}

func checkAddress(address string) error {
	fn, _, ok := strings.Cut(address, "/")
	if !ok || !validFunctionName(fn) {
		return fmt.Errorf("%w: %q, want \"function/key\"", ErrInvalidAddress, address)
	}
	return nil
}

// Reply answers the invoked message being handled: the caller of Invoke gets
// msg. It fails with ErrNotInvoked when the event is not an invoked message
// (Message.Invoked) and with ErrAlreadyReplied the second time. An invoked
// message the handler does not reply to is answered by the worker with an
// empty reply. Like every effect, the reply is sent only if the whole
// invocation succeeds.
func (c *Context) Reply(msg any) error {
	if c.msg == nil || c.msg.GetReplyId() == "" {
		return ErrNotInvoked
	}
	if c.replied {
		return ErrAlreadyReplied
	}
	b, err := EncodeMessage(msg)
	if err != nil {
		return err
	}
	c.replied = true
	c.replies = append(c.replies, &sabotv1.Reply{ReplyId: c.msg.GetReplyId(), Payload: b})
	return nil
}

// SetTimer registers a processing-time timer of the key: OnTimer runs when
// the worker's clock reaches at. A timer is (name, time, domain); setting the
// same one again is a no-op. It fails with ErrNoTimerHandler when the
// function has no OnTimer.
func (c *Context) SetTimer(name string, at time.Time) error {
	return c.timer1(name, at, ProcessingTime, false)
}

// SetEventTimer registers an event-time timer of the key: OnTimer runs when
// the watermark reaches at. See SetTimer.
func (c *Context) SetEventTimer(name string, at time.Time) error {
	return c.timer1(name, at, EventTime, false)
}

// DeleteTimer deletes the key's timer (name, at, domain) if it is set.
func (c *Context) DeleteTimer(name string, at time.Time, domain TimeDomain) error {
	return c.timer1(name, at, domain, true)
}

func (c *Context) timer1(name string, at time.Time, d TimeDomain, del bool) error {
	if c.fn.OnTimer == nil {
		return fmt.Errorf("%w: %q", ErrNoTimerHandler, c.fn.Name)
	}
	if d != ProcessingTime && d != EventTime {
		return fmt.Errorf("sabot: timer %q: invalid domain %v", name, d)
	}
	c.timers = append(c.timers, &sabotv1.TimerChange{
		Name:        name,
		TimestampMs: at.UnixMilli(),
		Domain:      d.proto(),
		Delete:      del,
	})
	return nil
}

// slot finds the invocation's slot of a declared state.
func (c *Context) slot(d *stateDecl) (*stateSlot, error) {
	for i, fd := range c.fn.decls {
		if fd == d {
			return &c.slots[i], nil
		}
	}
	return nil, fmt.Errorf("%w: %q in function %q", ErrUndeclaredState, d.name, c.fn.Name)
}

// read asks the worker for lazy state of the key.
func (c *Context) read(state string, r *sabotv1.StateRead) (*sabotv1.StateReadResult, error) {
	r.CallId, r.Key, r.State = c.call.GetId(), c.key, state
	res, err := c.rd.readState(c.ctx, r)
	if err != nil {
		return nil, fmt.Errorf("%w: state %q: %w", ErrStateRead, state, err)
	}
	if res.GetError() != "" {
		return nil, fmt.Errorf("%w: state %q: %s", ErrStateRead, state, res.GetError())
	}
	return res, nil
}

func ceilMillis(d time.Duration) int64 {
	ms := d.Milliseconds()
	if time.Duration(ms)*time.Millisecond < d {
		ms++
	}
	return ms
}
