package sabot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
)

// Message is one input of a function: streamed from a source, sent by
// another function, or invoked by a client waiting for a reply.
type Message struct {
	// Payload is the message's bytes, as sent. It is the handler's to read
	// for the duration of the call; copy it to keep it.
	Payload []byte
	// From is the sender's address ("function/key") of a message from
	// another function; empty for streamed and invoked messages.
	From string

	eventTimeMs  int64
	hasEventTime bool
	replyID      string
}

func messageOf(m *sabotv1.Message) Message {
	return Message{
		Payload:      m.GetPayload(),
		From:         m.GetFrom(),
		eventTimeMs:  m.GetEventTimeMs(),
		hasEventTime: m.EventTimeMs != nil,
		replyID:      m.GetReplyId(),
	}
}

// EventTime is the message's event time and whether it has one.
func (m Message) EventTime() (time.Time, bool) {
	if !m.hasEventTime {
		return time.Time{}, false
	}
	return time.UnixMilli(m.eventTimeMs), true
}

// Invoked reports whether a caller waits for a reply to the message
// (Context.Reply).
func (m Message) Invoked() bool { return m.replyID != "" }

// JSON unmarshals the payload into v with encoding/json.
func (m Message) JSON(v any) error {
	if err := json.Unmarshal(m.Payload, v); err != nil {
		return fmt.Errorf("sabot: message: %w", err)
	}
	return nil
}

// Decode decodes a message's payload with a codec:
//
//	order, err := sabot.Decode(msg, sabot.Proto[*pb.Order]())
func Decode[T any](m Message, c Codec[T]) (T, error) {
	v, err := c.Decode(m.Payload)
	if err != nil {
		return v, fmt.Errorf("sabot: message: %w", err)
	}
	return v, nil
}

// EncodeMessage is how Send, SendTo, SendAtEventTime and Reply turn a
// message into a payload: a []byte is sent as is (copied), a string as its
// bytes, a Message as its payload, a proto.Message in the protobuf binary
// format, and anything else as JSON (encoding/json).
func EncodeMessage(msg any) ([]byte, error) {
	switch m := msg.(type) {
	case []byte:
		return bytes.Clone(m), nil
	case string:
		return []byte(m), nil
	case Message:
		return bytes.Clone(m.Payload), nil
	case proto.Message:
		b, err := proto.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("sabot: encode message: %w", err)
		}
		return b, nil
	default:
		b, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("sabot: encode message: %w", err)
		}
		return b, nil
	}
}

// TimeDomain is the clock of a timer.
type TimeDomain int

const (
	// ProcessingTime timers fire when the worker's clock reaches them.
	ProcessingTime = TimeDomain(sabotv1.TimeDomain_TIME_DOMAIN_PROCESSING)
	// EventTime timers fire when the watermark reaches them.
	EventTime = TimeDomain(sabotv1.TimeDomain_TIME_DOMAIN_EVENT)
)

// String returns "processing" or "event".
func (d TimeDomain) String() string {
	switch d {
	case ProcessingTime:
		return "processing"
	case EventTime:
		return "event"
	default:
		return fmt.Sprintf("TimeDomain(%d)", int(d))
	}
}

func (d TimeDomain) proto() sabotv1.TimeDomain { return sabotv1.TimeDomain(d) }

func domainOf(d sabotv1.TimeDomain) TimeDomain {
	if d == sabotv1.TimeDomain_TIME_DOMAIN_EVENT {
		return EventTime
	}
	return ProcessingTime // the protocol's unspecified domain is processing time
}

// Timer is a timer of the key that fired. A timer is identified by (Name,
// Time, Domain): setting the same one twice gives one firing.
type Timer struct {
	Name   string
	Time   time.Time
	Domain TimeDomain
}
