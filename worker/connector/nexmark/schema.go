package nexmark

import "github.com/apache/arrow-go/v18/arrow"

// Column indexes of the schemas below, in order.
const (
	bidAuction = iota
	bidBidder
	bidPrice
	bidChannel
	bidURL
	bidDateTime
	bidExtra
)

const (
	personID = iota
	personName
	personEmail
	personCreditCard
	personCity
	personState
	personDateTime
	personExtra
)

const (
	auctionID = iota
	auctionItemName
	auctionDescription
	auctionInitialBid
	auctionReserve
	auctionDateTime
	auctionExpires
	auctionSeller
	auctionCategory
	auctionExtra
)

// timestampMs is Flink's TIMESTAMP(3): ms since the Unix epoch, no zone.
func timestampMs() arrow.DataType { return &arrow.TimestampType{Unit: arrow.Millisecond} }

func field(name string, t arrow.DataType) arrow.Field { return arrow.Field{Name: name, Type: t} }

// BidSchema returns the schema of bid batches, with Flink-Nexmark's column
// names: auction, bidder, price (int64, cents), channel, url (utf8),
// dateTime (timestamp[ms]), extra (utf8). No column is nullable.
func BidSchema() *arrow.Schema {
	i64, str := arrow.PrimitiveTypes.Int64, arrow.BinaryTypes.String
	return arrow.NewSchema([]arrow.Field{
		bidAuction:  field("auction", i64),
		bidBidder:   field("bidder", i64),
		bidPrice:    field("price", i64),
		bidChannel:  field("channel", str),
		bidURL:      field("url", str),
		bidDateTime: field("dateTime", timestampMs()),
		bidExtra:    field("extra", str),
	}, nil)
}

// PersonSchema returns the schema of person batches: id (int64), name,
// emailAddress, creditCard, city, state (utf8), dateTime (timestamp[ms]),
// extra (utf8). No column is nullable.
func PersonSchema() *arrow.Schema {
	i64, str := arrow.PrimitiveTypes.Int64, arrow.BinaryTypes.String
	return arrow.NewSchema([]arrow.Field{
		personID:         field("id", i64),
		personName:       field("name", str),
		personEmail:      field("emailAddress", str),
		personCreditCard: field("creditCard", str),
		personCity:       field("city", str),
		personState:      field("state", str),
		personDateTime:   field("dateTime", timestampMs()),
		personExtra:      field("extra", str),
	}, nil)
}

// AuctionSchema returns the schema of auction batches: id (int64),
// itemName, description (utf8), initialBid, reserve (int64, cents),
// dateTime, expires (timestamp[ms]), seller, category (int64), extra
// (utf8). No column is nullable.
func AuctionSchema() *arrow.Schema {
	i64, str := arrow.PrimitiveTypes.Int64, arrow.BinaryTypes.String
	return arrow.NewSchema([]arrow.Field{
		auctionID:          field("id", i64),
		auctionItemName:    field("itemName", str),
		auctionDescription: field("description", str),
		auctionInitialBid:  field("initialBid", i64),
		auctionReserve:     field("reserve", i64),
		auctionDateTime:    field("dateTime", timestampMs()),
		auctionExpires:     field("expires", timestampMs()),
		auctionSeller:      field("seller", i64),
		auctionCategory:    field("category", i64),
		auctionExtra:       field("extra", str),
	}, nil)
}
