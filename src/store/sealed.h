/*
 * store/sealed — files encrypted at rest (meeting content).
 *
 * Each file has a fresh random key of its own (AES-256-GCM), wrapped with
 * a master key kept in the state directory (32 raw bytes, mode 0600). The
 * content is cut into 64 KiB segments, each sealed on its own, so a byte
 * range is served after authenticating only the segments it touches.
 *
 * The file, integers big-endian (version 1):
 *
 *    off  len
 *      0    8  magic "PRLYSEAL"
 *      8    4  version, 1
 *     12    4  segment size: 65536 (the only one version 1 accepts)
 *     16   16  file id, random
 *     32    8  plaintext length L (at most SEALED_MAX_SIZE)
 *     40   12  wrap nonce, random
 *     52   32  the file key, encrypted with the master key
 *     84   16  its tag; AAD = bytes 0..40 of this header || context
 *    100       N segments, each its ciphertext (65536 bytes, the last one
 *              0..65536) followed by its 16-byte tag;
 *              N = max(1, ceil(L / 65536)), so an empty file has one empty
 *              segment. Segment i's AAD = file id || i (8 bytes) ||
 *              last (1 byte: 1 for i = N - 1, else 0).
 *
 * The file is exactly 100 + L + 16 N bytes; any other size is refused at
 * open. The context (say "meeting-uid/filename") is the caller's name for
 * the file: it is bound into the wrapped key's AAD, so a file renamed,
 * moved or swapped for another on disk fails to open. The length is in
 * that AAD too, so it cannot be edited to hide a truncation or an append;
 * the index and the last flag in each segment's AAD refuse segments
 * reordered, dropped from the end, or taken from another position.
 *
 * Segment nonces are derived, not stored: 4 zero bytes || the segment
 * index (8 bytes). That is safe because the file key is fresh random for
 * each file and seals only that file's segments, once each: no (key,
 * nonce) pair ever repeats, and no nonce needs to be stored or checked.
 * Rewriting a file makes a new key. The wrap nonce is random (96 bits)
 * under the long-lived master key, far inside GCM's bound for random
 * nonces at the number of files a server writes.
 *
 * Writing is atomic: a temporary file in the same directory, fsync,
 * rename, fsync of the directory; mode 0600.
 *
 * A sealed_master is immutable once opened and may be shared by threads;
 * a sealed_file belongs to one thread at a time (it holds scratch buffers
 * and remembers the last segment it decrypted, so reads in small pieces
 * decrypt each segment once). Errors: 0 or a negative errno, with a reason
 * in err (never a key).
 */
#ifndef PARLEY_STORE_SEALED_H
#define PARLEY_STORE_SEALED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#define SEALED_MAGIC        "PRLYSEAL"
#define SEALED_VERSION      1
#define SEALED_SEGMENT_SIZE 65536
#define SEALED_HEADER_SIZE  100
#define SEALED_MASTER_LEN   32
#define SEALED_CONTEXT_MAX  1024         /* bytes of a context */
#define SEALED_MAX_SIZE     (1ULL << 48) /* plaintext bytes of one file */

struct sealed_master;

/* Loads the 32-byte master key at path (the caller joins STATE_DIR and the
 * file name), or creates it (0600, atomically, never replacing a key that
 * appeared meanwhile) when absent; *created (may be NULL) says which.
 * -EPERM for a file group or others may access, -EINVAL for one that is
 * not a regular file of exactly 32 bytes. */
int sealed_master_open(OSSL_LIB_CTX *libctx, const char *path, struct sealed_master **out,
                       bool *created, char *err, size_t errlen);
/* A master key from bytes (tests, fuzzing). */
int sealed_master_from_bytes(OSSL_LIB_CTX *libctx, const unsigned char key[SEALED_MASTER_LEN],
                             struct sealed_master **out);
void sealed_master_free(struct sealed_master *m);

/* Writes data[0..len) as a sealed file at path under context (a non-empty
 * string of at most SEALED_CONTEXT_MAX bytes). Returns 0, -EINVAL, -EFBIG,
 * -ENOMEM, -EIO or the errno of a failed file operation. */
int sealed_write_file(const struct sealed_master *m, const char *path, const char *context,
                      const void *data, size_t len, char *err, size_t errlen);

struct sealed_file;
/* Opens path and checks its header: magic, version, segment size, the
 * wrapped key authenticated with context and the length, and the file's
 * size against the length. -EBADMSG on any authentication or consistency
 * failure, -ENOENT, -EIO (or another errno of open/read), -ENOMEM. */
int sealed_open(const struct sealed_master *m, const char *path, const char *context,
                struct sealed_file **out, char *err, size_t errlen);
uint64_t sealed_size(const struct sealed_file *f); /* plaintext bytes */
/* Reads plaintext [offset, offset + len) into buf, decrypting and
 * authenticating only the segments it touches. -EBADMSG when a segment
 * fails (buf is then zeroed), -EINVAL for a range beyond the size, -EIO. */
int sealed_read(struct sealed_file *f, uint64_t offset, void *buf, size_t len, char *err,
                size_t errlen);
void sealed_close(struct sealed_file *f);

#endif
