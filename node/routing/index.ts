export {
  createCapabilityDirectory,
  type Candidate,
  type CapabilityDirectory,
  type CapabilityDirectoryOptions,
  type FindOptions,
  type LocalCapabilities,
  type LookupStrategy,
} from "./capability-directory.js";
