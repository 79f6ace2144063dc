/**
 * Text from outside (DNS TXT records, suppression comments, SMTP replies) printed to a terminal with
 * its control characters escaped: a raw ESC sequence in a TXT record could rewrite the screen, hide
 * what follows or set the window title. C0, DEL, C1 and the bidirectional overrides (which reorder what
 * is shown, CVE-2021-42574) become `\xHH` / `\u{HHHH}`; everything else is printed as it is.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

export const escapeControls = (text: string): string =>
  text.replace(UNSAFE, (c) => {
    const code = c.charCodeAt(0)
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u{${code.toString(16)}}`
  })
