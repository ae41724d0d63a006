// Package nexmark is Sabot's Nexmark source: a deterministic generator of
// the Nexmark auction stream (people, auctions, bids) as Arrow record
// batches, plus straightforward single-threaded reference implementations
// of q0, q1 and q2 used as test oracles and benchmark baselines.
//
// It owns the event model ([Events], a pure function of (config, event
// number)), the Arrow schemas ([BidSchema], [PersonSchema], [AuctionSchema],
// with Flink-Nexmark's column names), the batch generator ([Generator]) and
// the reference loops ([ForEachBid], [ReferenceQ0], [ReferenceQ1],
// [ReferenceQ2]).
//
// # Rules implemented
//
// The rules are those of the reference generator (github.com/nexmark/nexmark,
// nexmark-flink: GeneratorConfig, NexmarkGenerator, PersonGenerator,
// AuctionGenerator, BidGenerator, PriceGenerator, StringsGenerator), as
// restated in the project's NEXMARK.md:
//
//   - Kinds: event n is a person if n%50 == 0, an auction if n%50 is 1..3,
//     else a bid (1 : 3 : 46). See [KindOf].
//   - Event time: BaseTime + n × 1e6/EventsPerSecond µs, truncated to ms
//     ([Events.DateTime]); in order (no out-of-orderness). With P instances
//     each instance's own events are P × 1e6/EventsPerSecond µs apart, as
//     NEXMARK.md's "times the number of generator instances" says. The
//     reference watermark is dateTime - [WatermarkDelay].
//   - Ids: the person created at event n has id 1000 + n/50; auctions are
//     numbered densely from 1000 in creation order; categories 10..14.
//   - Active sets: a random seller or bidder is drawn uniformly from the
//     latest min(created, ActivePeople = 1000) people plus 10 ids not yet
//     created; a random bid's auction from the latest InFlightAuctions
//     (100) auctions plus 10 not yet created (both ends inclusive of the
//     latest).
//   - Hot keys: all but 1 in HotSellersRatio (4) auctions go to the hot
//     seller, the latest person id rounded down to a multiple of 100; all
//     but 1 in HotAuctionRatio (2) bids go to the hot auction, the latest
//     auction id rounded down to a multiple of 100; all but 1 in
//     HotBiddersRatio (4) bids come from the hot bidder, the hot seller's
//     id + 1 (ids counted from 0 here, then offset by 1000).
//   - Prices: round(10^(6u) × 100) cents, u uniform in [0, 1): log-uniform
//     between 1 and 1,000,000 dollars; reserve = initial bid + another price.
//   - Auction length: expires = dateTime + 1 + uniform[0, 2 × horizon) ms,
//     horizon = dateTime(n + InFlightAuctions × 50/3) - dateTime(n): the
//     time for about 100 more auctions (0 or 1 ms at 10 M events/s, as in
//     the reference, so auctions then last 1–2 ms).
//   - Channels: 1 in 2 bids use Google, Facebook, Baidu or Apple (uniform),
//     each with one fixed URL; the others channel-<k>, k uniform in
//     [0, 10000), with a URL fixed per k: https://www.nexmark.com/<a>/<b>/<c>/item.htm?query=1
//     (a, b, c of 3–4 letters or '_') and, for 9 in 10 channels,
//     &channel_id=<abs(bit-reversed int32 k)>.
//   - Strings: names from the reference's first/last name lists, e-mail
//     <3–6 chars>@<3–4 chars>.com, credit card 4 groups of 4 digits, city
//     and state from its lists (states AZ, CA, ID, OR, WA, WY); item names
//     up to 19 and descriptions up to 99 characters, each 1 in 13 a space
//     and trimmed.
//   - Sizes: extra is lower-case letters, uniform in [d - δ, d + δ) long,
//     d = average - (size so far), δ = round(d/5). "Size so far" is the
//     reference's accounting: 8 bytes per number and the string lengths —
//     for a bid only its four numbers (32 bytes; channel and url are not
//     counted, so a bid's extra averages 67.5 bytes and its real size about
//     170), for a person not its dateTime. Averages 200 / 500 / 100 bytes.
//
// # The seed
//
// Every random draw of event n comes from a SplitMix64 generator started at
// a hash of (Config.Seed, n); the channel URL table from one started at a
// hash of (Config.Seed, k) for channel k. So event n depends only on the
// config and n: equal seeds give identical streams, different seeds
// unrelated ones, and a parallel source (instance i of P generating events
// i, i+P, …) produces exactly the single-instance event set, whatever the
// batch sizes and however instances are restarted ([Generator.Offset] and
// [Generator.SetOffset] are the whole source state).
//
// # Deviations from the reference
//
//   - Determinism: the reference draws from an unseeded java.util.Random
//     (its hot and channel URLs even from fresh ones), so its streams differ
//     run to run; ours are reproducible for a seed. Values are therefore
//     not the reference's, only their distributions. Draw order and the
//     letter generator differ too (extra uses a–z only; the reference's
//     nextExactString also emits characters below 'a' from negative ints).
//   - Parallelism: the reference splits the id space into contiguous blocks
//     (GeneratorConfig.split), each instance on its own timeline starting at
//     BaseTime; ours interleaves event numbers on one timeline, so the union
//     over instances equals the single-instance stream and dateTimes across
//     instances are globally ordered by event number.
//   - Bidder ids: nexmark-flink's BidGenerator (the version with channel
//     and url) adds FIRST_PERSON_ID twice, so its bidders are 1000 above
//     the intended ids — people created some 50,000 events later; we add
//     it once, so a bidder is an existing person (or one of the 10 about
//     to be created), as the rule and NEXMARK.md intend.
//   - Event time is exact integer arithmetic (the reference multiplies by a
//     float64 inter-event delay); base time defaults to a fixed epoch,
//     [DefaultBaseTime], not the wall clock.
//   - Proportions (1:3:46), the 10-id leads, the hot group of 100, 5
//     categories and 10,000 channels are constants, not config.
//   - Not implemented: rate shapes (only first_event_rate), wall-clock
//     pacing (the generator runs flat out; a source may pace by dateTime),
//     out-of-order groups, the extended-bid mode, and the reference's
//     single union row type (event_type, person, auction, bid): this package
//     emits one batch per kind ([Generator.Next]) or bids only
//     ([Generator.NextBids]).
//   - q1's price is a float64 (0.908 × price), not Flink's exact DECIMAL; see
//     [ReferenceQ1].
//
// # Concurrency
//
// [Events] is immutable and safe for concurrent use. A [Generator] belongs
// to one goroutine; run one per source subtask (they may share an Events
// via [Events.NewGenerator]). Nothing here starts goroutines or blocks.
//
// # Example
//
//	g, err := nexmark.NewGenerator(nexmark.Config{Seed: 1, NumEvents: 1e8, Instances: p}, i, mem)
//	if err != nil { ... }
//	defer g.Release()
//	for {
//		rec, done := g.NextBids(8192)
//		emit(rec) // the consumer releases rec
//		if done {
//			break
//		}
//	}
package nexmark
