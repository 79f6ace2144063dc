export * from "./Collector.js"
export { InvalidOutcome } from "./InvalidOutcome.js"
export * as SessionOutcome from "./SessionOutcome.js"
export { decodeOutcome, decodeOutcomeJson, encodeOutcome } from "./SessionOutcome.js"
