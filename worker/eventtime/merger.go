package eventtime

// InputMerger computes the watermark of a task with several input channels
// (the upstream subtasks of all its input edges), as Flink's
// StatusWatermarkValve:
//
//   - Each channel delivers watermarks and idle/active status. A channel's
//     watermark never decreases: a watermark at or below the channel's last
//     one is ignored.
//   - The output watermark is the minimum over the active, aligned channels,
//     emitted only when it rises above the last output: it never decreases.
//   - An idle channel is left out of the minimum. Watermarks arriving on an
//     idle channel are ignored: a sender marks itself active before it
//     sends a watermark (the Multiplexer's status rules guarantee this).
//   - A channel that returns from idleness with a watermark below the
//     output is unaligned: it stays out of the minimum until its watermark
//     catches up with the output, so the output keeps advancing with the
//     other channels (its records below the output are late). This is
//     where the merger differs from the Multiplexer, which holds.
//   - When the last active channel turns idle the output is idle (Idle
//     reports true): a downstream task leaves this input out of its own
//     minimum. If that channel held the output back, the output first
//     advances to the maximum watermark over all channels, since no
//     channel will advance any more (Flink's flush on all-idle).
//   - A channel that ended (EndOfInput) counts as MaxWatermark, as the
//     final watermark a finished upstream sends. It is active for good.
//     As in Flink, if every other channel is idle or unaligned, the output
//     then goes to MaxWatermark.
//
// Status changes are reported through Idle, as for the Multiplexer: after
// SetIdle the task compares Idle with the status it last sent downstream.
// When a call both advances the output and makes it idle, the watermark
// goes first.
//
// The output minimum is recomputed by a scan over the channels, which is
// cheap at the fan-in of a task (its upstream parallelism); Flink keeps a
// heap for the same purpose.
//
// An InputMerger is owned by one task and used from its goroutine only. A
// channel index outside [0, n) is a caller bug and panics.
type InputMerger struct {
	ch   []channelStatus
	out  int64
	idle bool
}

type channelStatus struct {
	wm      int64
	idle    bool
	aligned bool // takes part in the minimum
	ended   bool
}

// NewInputMerger returns a merger over n channels, each active with no
// watermark yet (MinWatermark). n must be positive.
func NewInputMerger(n int) *InputMerger {
	if n <= 0 {
		panicf("input merger needs at least one channel, got %d", n)
	}
	v := &InputMerger{ch: make([]channelStatus, n), out: MinWatermark}
	for i := range v.ch {
		v.ch[i] = channelStatus{wm: MinWatermark, aligned: true}
	}
	return v
}

// Watermark returns the output watermark last emitted (MinWatermark if
// none).
func (v *InputMerger) Watermark() int64 { return v.out }

// Idle reports whether every channel is idle.
func (v *InputMerger) Idle() bool { return v.idle }

// Len returns the number of channels.
func (v *InputMerger) Len() int { return len(v.ch) }

// Update delivers a watermark on channel. It returns the output watermark,
// with advanced set if it rose and must be sent downstream. Watermarks on
// an idle or ended channel, or not above the channel's last one, are
// ignored.
func (v *InputMerger) Update(channel int, wm int64) (out int64, advanced bool) {
	c := v.channel(channel)
	if c.idle || c.ended || wm <= c.wm {
		return v.out, false
	}
	c.wm = wm
	if !c.aligned && wm >= v.out {
		c.aligned = true
	}
	return v.advanceMin()
}

// SetIdle delivers an idle (true) or active (false) status on channel. A
// channel turning idle can advance the output (it no longer holds the
// minimum back); the result is as for Update. Statuses that change nothing,
// and any status on an ended channel, are ignored.
func (v *InputMerger) SetIdle(channel int, idle bool) (out int64, advanced bool) {
	c := v.channel(channel)
	if c.ended || c.idle == idle {
		return v.out, false
	}
	if !idle {
		// Idle -> active. The channel rejoins the minimum only if it has
		// not fallen behind the output; the output does not move now.
		c.idle = false
		c.aligned = c.wm >= v.out
		v.idle = false
		return v.out, false
	}
	// Active -> idle.
	c.idle, c.aligned = true, false
	if !v.hasActive() {
		v.idle = true
		if c.wm == v.out {
			// This channel was holding the output back and nothing will
			// advance it any more: flush to the maximum over all channels.
			return v.advanceTo(v.maxAll())
		}
		return v.out, false
	}
	if c.wm == v.out {
		return v.advanceMin()
	}
	return v.out, false
}

// EndOfInput records that channel has ended: it counts as MaxWatermark from
// now on, whatever its status was. The result is as for Update.
func (v *InputMerger) EndOfInput(channel int) (out int64, advanced bool) {
	c := v.channel(channel)
	if c.ended {
		return v.out, false
	}
	*c = channelStatus{wm: MaxWatermark, aligned: true, ended: true}
	v.idle = false
	return v.advanceMin()
}

func (v *InputMerger) channel(i int) *channelStatus {
	if i < 0 || i >= len(v.ch) {
		panicf("input channel %d out of range [0, %d)", i, len(v.ch))
	}
	return &v.ch[i]
}

// advanceMin emits the minimum over aligned channels if it is above the
// output (Flink's findAndOutputNewMinWatermarkAcrossAlignedChannels).
func (v *InputMerger) advanceMin() (int64, bool) {
	lo, found := MaxWatermark, false
	for i := range v.ch {
		if c := &v.ch[i]; c.aligned {
			lo, found = min(lo, c.wm), true
		}
	}
	if !found {
		return v.out, false
	}
	return v.advanceTo(lo)
}

func (v *InputMerger) advanceTo(wm int64) (int64, bool) {
	if wm <= v.out {
		return v.out, false
	}
	v.out = wm
	return wm, true
}

func (v *InputMerger) maxAll() int64 {
	hi := MinWatermark
	for i := range v.ch {
		hi = max(hi, v.ch[i].wm)
	}
	return hi
}

func (v *InputMerger) hasActive() bool {
	for i := range v.ch {
		if !v.ch[i].idle {
			return true
		}
	}
	return false
}
