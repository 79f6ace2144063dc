/**
 * A nesting-depth bound for JSON text, checked before `JSON.parse`: a line of 100,000 `[` parses, but
 * every recursive step after it (Schema decoding, formatting an error) overflows the stack and the
 * input's line is lost. No wire form we read nests deeper than 6 levels (a report's
 * `policies[].failure-details[]` objects), so 64 leaves room for anything legitimate.
 */

/** The deepest nesting of objects and arrays accepted. */
export const MAX_DEPTH = 64

/** Whether `text` nests objects/arrays deeper than `limit` (brackets inside strings do not count). */
export const exceeds = (text: string, limit: number = MAX_DEPTH): boolean => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c /* \ */) i++
      else if (c === 0x22 /* " */) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > limit) return true
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--
  }
  return false
}
