/** Defaults of the seed's admission components, in one place. */
import { CLOCK_TOLERANCE_S, MAX_TOKEN_LIFETIME_S } from '../../protocol/admission.js'

/** Everything admission persists lives in `<dataDir>/admission/`. */
export const ADMISSION_DIR = 'admission'
/** Signing keys, one JSON file per key, inside the admission dir. */
export const KEYS_DIR = 'keys'
export const JOIN_TOKENS_FILE = 'join-tokens.json'
export const REVOKED_FILE = 'revoked.json'
export const AUDIT_LOG_FILE = 'audit.log'

/** A signing key signs new tokens for this long before a new key replaces it. */
export const DEFAULT_KEY_ROTATION_MS = 24 * 3_600_000
/**
 * The next signing key is published this long before it signs (at most; a tenth of the
 * rotation period when that is shorter): several of the agents' JWKS polls.
 */
export const DEFAULT_KEY_PREPUBLISH_MS = 10 * 60_000
/** Longest admission-token lifetime; a retired key stays in the JWKS this long after retiring. */
export const DEFAULT_MAX_TOKEN_LIFETIME_MS = MAX_TOKEN_LIFETIME_S * 1000
/** Added to a retired key's publication window to cover clock skew between seed and verifiers (well above their tolerance). */
export const KEY_RETIREMENT_SKEW_MS = Math.max(5 * 60_000, 2 * CLOCK_TOLERANCE_S * 1000)

/** A join token is redeemable for this long unless told otherwise. */
export const DEFAULT_JOIN_TOKEN_TTL_MS = 24 * 3_600_000
/** A join token admits one node unless told otherwise (`Infinity` means unlimited). */
export const DEFAULT_JOIN_TOKEN_USES = 1
/** Repositories a join token grants unless told otherwise. */
export const DEFAULT_JOIN_TOKEN_SCOPE: readonly string[] = ['**']
/** Expired or used-up join tokens are kept (to say why they are refused) this long, then forgotten. */
export const JOIN_TOKEN_RETENTION_MS = 7 * 24 * 3_600_000
export const JOIN_TOKEN_PREFIX = 'pjt_'
/** Random bytes in a join token's secret. */
export const JOIN_TOKEN_SECRET_BYTES = 32

/** A possession proof's timestamp may differ from the seed's clock by this much. */

/** A state-file lock held longer than this is taken to belong to a dead process. */
export const LOCK_STALE_MS = 10_000
/** How long to wait for a state-file lock before giving up. */
export const LOCK_TIMEOUT_MS = 5_000

/** JWS algorithms an OIDC token may use: asymmetric only, never HS* or none. */
export const OIDC_ALGORITHMS: readonly string[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']
/** Repositories an OIDC-admitted agent may pull unless told otherwise. */
export const DEFAULT_OIDC_SCOPE: readonly string[] = ['**']
/** Longest OIDC token lifetime accepted (`exp - iat`, or `exp - now` without `iat`). A projected Kubernetes token lives 1h unless told otherwise. */
export const DEFAULT_OIDC_MAX_LIFETIME_S = 24 * 3600
/** Deadline of one fetch of a remote OIDC JWKS. */
export const OIDC_JWKS_TIMEOUT_MS = 5_000
/** A remote JWKS is fetched again after this long, and at most this often for an unknown `kid`. */
export const OIDC_JWKS_MAX_AGE_MS = 10 * 60_000
export const OIDC_JWKS_COOLDOWN_MS = 30_000
/** A JWKS file is checked for changes (stat) at most this often, and read again at least this often. */
export const OIDC_JWKS_FILE_CHECK_MS = 1_000
export const OIDC_JWKS_FILE_MAX_AGE_MS = 5 * 60_000
/** Largest JWKS file read. */
export const MAX_OIDC_JWKS_FILE_BYTES = 1024 * 1024
