/**
 * The one error type of the advertisement decoders (src/protocol/advertisement.ts and the files it dispatches to) and
 * of the bind-key list parser. Pure code.
 *
 * `code` is a catalog-key suffix for the node layer to word; `params` are its substitutions: a device address, a line
 * number, a version number — never the advertised bytes, never a key. `message` is the English for logs and tests.
 */

/**
 * Every code an AdvertisementError can carry, and what the node layer is expected to do with it:
 * - "bthome-no-key"       an encrypted BTHome advertisement from a device without a bind key (params: address)
 * - "bthome-decrypt"      the bind key does not open it: wrong key, or forged/corrupted bytes (params: address)
 * - "bthome-replay"       its counter is not above the last accepted one from that device: a repeat or a replay;
 *                         drop it silently, it is not an error a user can act on (params: address)
 * - "bthome-unencrypted"  a device that has a bind key sent an unencrypted advertisement: anyone can send that with a
 *                         copied address, so it is refused (params: address)
 * - "bthome-version"      the device information byte names a BTHome version other than 2 (params: address, version)
 * - "bthome-malformed"    too short to be BTHome: no device information byte, or an encrypted one shorter than its
 *                         counter and MIC (params: address)
 * - "bind-keys-syntax"    a line of the bind-key list is not `address = key` (params: line)
 * - "bind-keys-address"   a line's address is not six colon-separated hex bytes (params: line)
 * - "bind-keys-key"       a line's key is not 32 hex digits (params: line)
 * - "bind-keys-duplicate" a line repeats an address of an earlier line (params: line)
 */
export const ADVERTISEMENT_ERROR_CODES = [
  "bthome-no-key",
  "bthome-decrypt",
  "bthome-replay",
  "bthome-unencrypted",
  "bthome-version",
  "bthome-malformed",
  "bind-keys-syntax",
  "bind-keys-address",
  "bind-keys-key",
  "bind-keys-duplicate",
] as const;

export type AdvertisementErrorCode = (typeof ADVERTISEMENT_ERROR_CODES)[number];

export class AdvertisementError extends Error {
  constructor(
    readonly code: AdvertisementErrorCode,
    readonly params: Readonly<Record<string, string | number>>,
    message: string,
  ) {
    super(message);
    this.name = "AdvertisementError";
  }
}
