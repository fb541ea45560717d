export { BLOB_CHUNK_BYTES, BLOBS_PROTOCOL, BLOBS_PROTOCOL_VERSION, blobsMessageSchema, createBlobsCodec, MAX_BLOBS_MESSAGE_BYTES, MAX_WINDOW_BYTES, MAX_ITEMS_PER_GET, type BlobsMessage } from "./messages.js";
export { BlobClient, type BlobClientOptions, type BlobSink, type FetchBlobsOptions, type FetchBlobsResult, type FetchProgress } from "./client.js";
export { createBlobServer, DEFAULT_BYTES_IN_FLIGHT_PER_PEER, DEFAULT_STALL_MS, DEFAULT_TRANSFERS_PER_PEER, type BlobServer, type BlobServerOptions } from "./server.js";
export { startBlobService, type BlobService, type BlobServiceOptions } from "./service.js";
export { PeerByteCounters, type ByteCounters } from "./wire-counters.js";
export { ByteWindow } from "./byte-window.js";
