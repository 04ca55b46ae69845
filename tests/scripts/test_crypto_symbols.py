#!/usr/bin/python3
"""No cryptography outside Parley's crypto module's library context
(issue 18): every OpenSSL symbol that parleyd and parleyctl import
(``nm -D --undefined-only``) must belong to an allowed family, and none may
be a deprecated primitive or a call that fetches implicitly from OpenSSL's
default library context (under security.fips that context is not the one
the validated module was loaded into, so such a call would bypass it).

Usage: test_crypto_symbols.py PARLEYD PARLEYCTL
"""
import os
import re
import subprocess
import sys

# OpenSSL's symbols are those versioned OPENSSL_x (libcrypto.so.3,
# libssl.so.3); the name families below are checked as well, so a symbol
# without version information is not missed.
OPENSSL_PREFIXES = (
    "ASN1_", "BIO_", "BN_", "CRYPTO_", "DH_", "DSA_", "EC_", "ECDSA_", "ENGINE_", "ERR_",
    "EVP_", "GENERAL_", "HMAC", "MD4", "MD5", "OPENSSL_", "OSSL_", "PEM_", "PKCS", "RAND_",
    "RSA_", "SHA1", "SHA224", "SHA256", "SHA384", "SHA512", "SSL_", "TLS_", "DTLS_", "X509",
    "a2i_", "d2i_", "i2d_", "AES_", "CMAC_", "CONF_", "NCONF_", "OBJ_", "DES_", "RC4",
)

# What may be imported: an exact list (crypto_symbols.allowed beside this
# file), not whole families, so that every new OpenSSL call is a decision
# someone wrote down. A family prefix would let EVP_Q_digest(NULL, "MD5")
# or PEM_write_bio_PrivateKey with 3DES through.
ALLOWED_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crypto_symbols.allowed")


def allowed_names():
    names = set()
    with open(ALLOWED_FILE) as f:
        for line in f:
            name = line.split("#", 1)[0].strip()
            if name:
                names.add(name)
    return names


# Named outright: deprecated low-level primitives, and calls that fetch
# implicitly from the default library context. EVP_sha256() and friends
# return the default context's algorithm; EVP_get_*byname look names up
# there; the constructors without _ex make objects bound to it (their
# signatures are then checked, and their keys made, there).
FORBIDDEN = {
    # randomness from the default DRBG
    "RAND_bytes", "RAND_priv_bytes", "RAND_pseudo_bytes", "RAND_seed", "RAND_add",
    "RAND_load_file", "RAND_status", "RAND_poll",
    # deprecated digests, MACs, ciphers
    "MD4", "MD5", "MD5_Init", "MD5_Update", "MD5_Final", "SHA1", "SHA1_Init", "SHA1_Update",
    "SHA1_Final", "SHA224", "SHA256", "SHA256_Init", "SHA256_Update", "SHA256_Final", "SHA384",
    "SHA512", "SHA512_Init", "SHA512_Update", "SHA512_Final", "HMAC", "HMAC_CTX_new",
    "HMAC_Init_ex", "HMAC_Update", "HMAC_Final", "HMAC_CTX_free", "CMAC_CTX_new", "CMAC_Init",
    "AES_set_encrypt_key", "AES_set_decrypt_key", "AES_encrypt", "AES_decrypt",
    "AES_ctr128_encrypt", "CRYPTO_gcm128_new", "CRYPTO_ctr128_encrypt",
    # implicit fetches from the default context
    "EVP_md5", "EVP_sha1", "EVP_sha224", "EVP_sha256", "EVP_sha384", "EVP_sha512",
    "EVP_sha3_256", "EVP_aes_128_gcm", "EVP_aes_256_gcm", "EVP_aes_128_ctr", "EVP_aes_256_ctr",
    "EVP_aes_128_cbc", "EVP_aes_256_cbc", "EVP_chacha20", "EVP_chacha20_poly1305",
    "EVP_get_digestbyname", "EVP_get_cipherbyname", "EVP_get_digestbynid",
    "EVP_get_cipherbynid", "EVP_PKEY_CTX_new", "EVP_PKEY_CTX_new_id",
    "EVP_PKEY_new_raw_private_key", "EVP_PKEY_new_raw_public_key", "EVP_PKEY_new_mac_key",
    "EVP_DigestSignInit", "EVP_DigestVerifyInit", "EVP_PKEY_keygen", "EVP_BytesToKey",
    "EVP_PBE_scrypt", "PKCS5_PBKDF2_HMAC", "PKCS5_PBKDF2_HMAC_SHA1",
    "EVP_default_properties_enable_fips", "EVP_set_default_properties_default",
    # objects bound to the default context
    "SSL_CTX_new", "X509_new", "X509_CRL_new", "X509_REQ_new", "X509_STORE_CTX_new",
    "X509_STORE_load_file", "X509_STORE_load_locations", "PEM_read_bio_PrivateKey",
    "PEM_read_PrivateKey", "d2i_PrivateKey", "d2i_AutoPrivateKey", "d2i_PUBKEY",
    "X509_digest_sig", "X509_pubkey_digest",
    # legacy key types and engines
    "EC_KEY_new", "EC_KEY_new_by_curve_name", "EC_KEY_generate_key", "ECDSA_sign",
    "ECDSA_do_sign", "ECDSA_verify", "ECDSA_do_verify", "RSA_new", "RSA_generate_key_ex",
    "RSA_sign", "RSA_verify", "DH_new", "DSA_new", "ENGINE_init", "ENGINE_by_id",
}

# A NULL library context cannot be seen in a symbol list: the sources are
# read too. A call that passes NULL (or NULL, NULL) where a library context
# goes is refused unless its line says why with "default-context:".
SOURCE_PATTERNS = [
    re.compile(r"\b\w+(_ex|_fetch|_from_name|_from_data|_Q_digest|_Q_keygen)\(NULL\s*,"),
    re.compile(r"\b(digest|mac|sign|aead|stun_crypto|pki)_init\(NULL\s*,"),
    re.compile(r"\bRAND_(priv_)?bytes_ex\(NULL\b"),
]


def source_problems(root):
    problems = []
    for folder, _, files in os.walk(os.path.join(root, "src")):
        if os.path.basename(folder) == "bench":
            continue  # parley-bench, the load generator: not a server
        for name in files:
            if not name.endswith(".c"):
                continue
            path = os.path.join(folder, name)
            with open(path) as f:
                for no, line in enumerate(f, 1):
                    if "default-context:" in line:
                        continue
                    if any(p.search(line) for p in SOURCE_PATTERNS):
                        problems.append(f"{os.path.relpath(path, root)}:{no}: a NULL library "
                                        f"context: {line.strip()}")
    return problems


def imported(binary):
    out = subprocess.run(["nm", "-D", "--undefined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, _, version = parts[-1].partition("@")
        syms[name] = version
    return syms


def is_openssl(name, version):
    return version.startswith("OPENSSL_") or name.startswith(OPENSSL_PREFIXES)


def check(binary, allowed):
    problems = []
    for name, version in sorted(imported(binary).items()):
        if not is_openssl(name, version):
            continue
        if name in FORBIDDEN:
            problems.append(f"{name}: forbidden (deprecated, or the default library context)")
        elif name not in allowed:
            problems.append(f"{name}: not in tests/scripts/crypto_symbols.allowed")
    return problems


def main(binaries):
    if not binaries:
        print(__doc__, file=sys.stderr)
        return 2
    failed = False
    allowed = allowed_names()
    for binary in binaries:
        problems = check(binary, allowed)
        for p in problems:
            print(f"{binary}: {p}")
        failed = failed or bool(problems)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for p in source_problems(root):
        print(p)
        failed = True
    if failed:
        print("OpenSSL is used outside the crypto module's rules: call it through "
              "src/crypto on the library context (crypto/fips), or add the name to "
              "tests/scripts/crypto_symbols.allowed with a reason", file=sys.stderr)
        return 1
    print(f"ok: {len(binaries)} binaries import only the {len(allowed)} allowed OpenSSL "
          "symbols, and no source passes a NULL library context")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
