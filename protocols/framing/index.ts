export { FramedChannel, type FramedChannelOptions, type ReceiveOptions } from "./channel.js";
export { bytesSchema, createMessageCodec, decodeStrict, encodeCanonical, type MessageCodec, type MessageCodecOptions } from "./codec.js";
export {
  ChannelClosedError,
  FrameTimeoutError,
  FrameTooLargeError,
  FramingError,
  MalformedFrameError,
  PeerLimitError,
  UnsupportedVersionError,
  type FramingFailure,
} from "./errors.js";
export { encodeFrame, FrameDecoder, varintLength } from "./frame.js";
export { createPeerRateLimiter, type PeerRateLimiter, type PeerRateLimiterOptions, type PeerRateLimits } from "../../src/util/rate-limiter.js";
export { ChannelPool, handleFramed, type ChannelPoolOptions, type ChannelSettings, type HandleFramedOptions } from "./pool.js";
export { startPairSessions, type PairSession, type PairSessions, type PairSessionsOptions } from "./pair-sessions.js";
export { memoryChannelPair, type MemoryChannelOptions, type MessageChannel } from "./message-channel.js";
export {
  RequestChannel,
  serveRequests,
  type Exchange,
  type ExchangeOptions,
  type RequestChannelOptions,
  type RequestShape,
  type ServeRequestsOptions,
} from "./request-channel.js";
export { RequestPool, type RequestPoolOptions } from "./request-pool.js";
