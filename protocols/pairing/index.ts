/** The pairing protocol: message schemas and both sides of the handshake over an abstract channel. */
export { PairingError, type PairingErrorCode } from "./errors.js";
export { type PairingChannel, receiveWithin } from "./channel.js";
export {
  PAIRING_PROTOCOL,
  MAX_WELCOME_STATEMENTS,
  helloSchema,
  challengeSchema,
  proofSchema,
  welcomeSchema,
  errorSchema,
  toJoinerSchema,
  toInviterSchema,
  type HelloMessage,
  type ChallengeMessage,
  type ProofMessage,
  type WelcomeMessage,
  type ErrorMessage,
} from "./messages.js";
export { runPairingJoiner, type JoinerOptions, type JoinResult } from "./joiner.js";
export { handlePairingRequest, type InviterContext, type PairingOutcome } from "./inviter.js";
