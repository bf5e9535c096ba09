package client

// Code is the code of an error frame. Each has the WebSocket close code
// that follows it (the contract's error-code table).
type Code string

// Error codes.
const (
	// SlowConsumer: the client fell more than MaxQueueBytes behind. Go on
	// with from_seq=resume_from_seq (and epoch).
	SlowConsumer Code = "slow_consumer"
	// ReplayLost: events the replay still had to send were removed from
	// the stream after others were sent. Go on with from_seq=resume_from_seq:
	// the new connection starts with a gap frame.
	ReplayLost Code = "replay_lost"
	// StreamReset: the stream was deleted and made again, or from_seq's
	// epoch is not the stream's. Start over without from_seq.
	StreamReset Code = "stream_reset"
	// TokenRevoked: the client's token was removed from the tokens file
	// (or its rights changed). Go on with a valid token (and from_seq).
	TokenRevoked Code = "token_revoked"
	// Shutdown: the gateway stops. No error frame, only the close (1001).
	Shutdown Code = "shutdown"
)

// WebSocket close codes (RFC 6455, section 7.4.1).
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	ClosePolicyViolation = 1008
	CloseMessageTooBig   = 1009
	CloseServiceRestart  = 1012
	CloseTryAgainLater   = 1013
)

// Close is the WebSocket close code that ends a connection with code.
func (c Code) Close() int {
	switch c {
	case SlowConsumer, TokenRevoked:
		return ClosePolicyViolation
	case ReplayLost:
		return CloseTryAgainLater
	case StreamReset:
		return CloseServiceRestart
	default:
		return CloseGoingAway
	}
}

// Resumes reports whether the error frame carries resume_from_seq.
func (c Code) Resumes() bool {
	return c == SlowConsumer || c == ReplayLost || c == TokenRevoked
}

// closeText is the close frame's reason.
func (c Code) closeText() string {
	switch c {
	case SlowConsumer:
		return "slow consumer"
	case ReplayLost:
		return "replay lost"
	case StreamReset:
		return "stream reset"
	case TokenRevoked:
		return "token revoked"
	default:
		return "gateway shutting down"
	}
}
