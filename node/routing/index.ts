export {
  capabilityService,
  createCapabilityDirectory,
  type Candidate,
  type CapabilityDirectory,
  type CapabilityDirectoryOptions,
  type CapabilityServiceOptions,
  type FindOptions,
  type LocalCapabilities,
  type LookupStrategy,
} from "./capability-directory.js";
export { localOffer } from "./local-offer.js";
