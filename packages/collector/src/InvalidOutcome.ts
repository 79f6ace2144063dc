/**
 * Refused input: a session outcome or a batch of rows that breaks a rule of `SessionOutcome`
 * (internal/OutcomeRules.ts). Nothing of a refused input is stored.
 */
import { Data } from "effect"

/** `field` is the path of the offending value, e.g. `policies[1].failureDetails[0].reasonCode`. */
export class InvalidOutcome extends Data.TaggedError("InvalidOutcome")<{
  readonly reason: string
  readonly field: string
}> {
  override get message(): string {
    return `invalid session outcome: ${this.field === "" ? "" : `${this.field}: `}${this.reason}`
  }
}
