/*
 * SDP the media tests share: what real clients send (written from their
 * documented behaviour), with test keys of the right lengths.
 */
#ifndef PARLEY_TEST_SDP_SAMPLES_H
#define PARLEY_TEST_SDP_SAMPLES_H

/* base64 of 30 bytes (AES_CM_128_*), 28 (AEAD_AES_128_GCM), 44
 * (AEAD_AES_256_GCM) and 29 (wrong for every suite). */
#define KEY30_A "NIdS6/iaKrZFxQYHiBbYoLiyWy0HFZVdNF/Lw+ZF"
#define KEY30_B "IDdpP4skKzo3FPObwEKe6zl7FWMJj8sva9mYS0oj"
#define KEY30_C "T0R10P2T7Qw6xY4KCj7+8L4kongmmuoWcbILeAxb"
#define KEY28   "eoGz8QtNqhTOrgv34854l/bKZQ7g86IuQBMtbg=="
#define KEY44   "DAomBrFZAr6ssuS37cS05C2vS2wwEHkK3oAt5O5rUr4VqYAtAZCWl9Hn8GU="
#define KEY29   "zHKhem2j3X711LAV++5x26ujwsCYYxKgFhAPv4c="

#define FP_A                                                                                       \
    "2D:71:16:42:B7:26:B0:44:01:62:7C:A9:FB:AC:32:F5:C8:53:0F:B1:90:3C:C4:DB:02:25:87:17:92:1A:"   \
    "48:81"
#define FP_B                                                                                       \
    "A1:FC:E4:36:38:54:FF:88:8C:FF:4B:8E:78:75:D6:00:C2:68:23:90:41:2A:8C:F7:9B:37:D0:B1:11:48:"   \
    "B0:FA"

#define SDP_HEAD                                                                                   \
    "v=0\r\n"                                                                                      \
    "o=- 1294817283 2391838455 IN IP4 192.168.1.33\r\n"                                            \
    "s=-\r\n"                                                                                      \
    "c=IN IP4 192.168.1.33\r\n"                                                                    \
    "t=0 0\r\n"

/* baresip with mediaenc=srtp-mand: RTP/SAVP, every suite it knows. */
#define SDP_BARESIP_SRTP_MAND                                                                      \
    SDP_HEAD                                                                                       \
    "a=tool:baresip 3.10.1\r\n"                                                                    \
    "m=audio 10090 RTP/SAVP 96 0 8 101\r\n"                                                        \
    "b=AS:125\r\n"                                                                                 \
    "a=rtpmap:96 opus/48000/2\r\n"                                                                 \
    "a=fmtp:96 stereo=1;sprop-stereo=1;maxaveragebitrate=28000\r\n"                                \
    "a=rtpmap:0 PCMU/8000\r\n"                                                                     \
    "a=rtpmap:8 PCMA/8000\r\n"                                                                     \
    "a=rtpmap:101 telephone-event/8000\r\n"                                                        \
    "a=fmtp:101 0-15\r\n"                                                                          \
    "a=sendrecv\r\n"                                                                               \
    "a=label:1\r\n"                                                                                \
    "a=ssrc:1871536522 cname:cc2a7e1f-1e1f-4d8e-a4de-4f3e57b4d7b0\r\n"                             \
    "a=rtcp-rsize\r\n"                                                                             \
    "a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:" KEY30_A "\r\n"                                    \
    "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_B "\r\n"                                    \
    "a=crypto:3 AEAD_AES_256_GCM inline:" KEY44 "\r\n"                                             \
    "a=crypto:4 AEAD_AES_128_GCM inline:" KEY28 "\r\n"                                             \
    "a=ptime:20\r\n"

/* baresip with mediaenc=srtp: optional SRTP, RTP/AVP carrying a=crypto. */
#define SDP_BARESIP_SRTP_OPT                                                                       \
    SDP_HEAD                                                                                       \
    "m=audio 10092 RTP/AVP 96 0 101\r\n"                                                           \
    "a=rtpmap:96 opus/48000/2\r\n"                                                                 \
    "a=rtpmap:0 PCMU/8000\r\n"                                                                     \
    "a=rtpmap:101 telephone-event/8000\r\n"                                                        \
    "a=sendrecv\r\n"                                                                               \
    "a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:" KEY30_A "\r\n"                                    \
    "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" KEY30_B "\r\n"                                    \
    "a=ptime:20\r\n"

/* Linphone with DTLS-SRTP: session-level fingerprint, audio and video. */
#define SDP_LINPHONE_DTLS                                                                          \
    "v=0\r\n"                                                                                      \
    "o=alice 3004 1288 IN IP4 10.0.0.7\r\n"                                                        \
    "s=Talk\r\n"                                                                                   \
    "c=IN IP4 10.0.0.7\r\n"                                                                        \
    "t=0 0\r\n"                                                                                    \
    "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n"                 \
    "a=record:off\r\n"                                                                             \
    "a=fingerprint:SHA-256 " FP_A "\r\n"                                                           \
    "m=audio 7078 UDP/TLS/RTP/SAVP 96 97 0 8 101\r\n"                                              \
    "a=rtpmap:96 opus/48000/2\r\n"                                                                 \
    "a=fmtp:96 useinbandfec=1\r\n"                                                                 \
    "a=rtpmap:97 speex/16000\r\n"                                                                  \
    "a=rtpmap:101 telephone-event/8000\r\n"                                                        \
    "a=rtcp:7079\r\n"                                                                              \
    "a=setup:actpass\r\n"                                                                          \
    "a=rtcp-fb:* trr-int 5000\r\n"                                                                 \
    "a=rtcp-fb:* ccm tmmbr\r\n"                                                                    \
    "m=video 9078 UDP/TLS/RTP/SAVP 96\r\n"                                                         \
    "a=rtpmap:96 VP8/90000\r\n"                                                                    \
    "a=rtcp:9079\r\n"                                                                              \
    "a=setup:actpass\r\n"                                                                          \
    "a=rtcp-fb:* ccm fir\r\n"                                                                      \
    "a=recvonly\r\n"

/* A browser: BUNDLE, ICE, per-section fingerprint, a data channel. */
#define SDP_WEBRTC                                                                                 \
    "v=0\r\n"                                                                                      \
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"                                               \
    "s=-\r\n"                                                                                      \
    "t=0 0\r\n"                                                                                    \
    "a=group:BUNDLE 0 1 2\r\n"                                                                     \
    "a=extmap-allow-mixed\r\n"                                                                     \
    "a=msid-semantic: WMS stream0\r\n"                                                             \
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n"                                      \
    "c=IN IP4 0.0.0.0\r\n"                                                                         \
    "a=rtcp:9 IN IP4 0.0.0.0\r\n"                                                                  \
    "a=ice-ufrag:Wc3K\r\n"                                                                         \
    "a=ice-pwd:8y6Yl5Rz0mE7rQmMHqTcXv5h\r\n"                                                       \
    "a=ice-options:trickle\r\n"                                                                    \
    "a=fingerprint:sha-256 " FP_B "\r\n"                                                           \
    "a=setup:actpass\r\n"                                                                          \
    "a=mid:0\r\n"                                                                                  \
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"                                   \
    "a=sendrecv\r\n"                                                                               \
    "a=msid:stream0 track0\r\n"                                                                    \
    "a=rtcp-mux\r\n"                                                                               \
    "a=rtpmap:111 opus/48000/2\r\n"                                                                \
    "a=rtcp-fb:111 transport-cc\r\n"                                                               \
    "a=fmtp:111 minptime=10;useinbandfec=1\r\n"                                                    \
    "a=ssrc:3570614608 cname:4TOk42mSjXCkVIa6\r\n"                                                 \
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n"                                                        \
    "c=IN IP4 0.0.0.0\r\n"                                                                         \
    "a=rtcp:9 IN IP4 0.0.0.0\r\n"                                                                  \
    "a=ice-ufrag:Wc3K\r\n"                                                                         \
    "a=ice-pwd:8y6Yl5Rz0mE7rQmMHqTcXv5h\r\n"                                                       \
    "a=fingerprint:sha-256 " FP_B "\r\n"                                                           \
    "a=setup:actpass\r\n"                                                                          \
    "a=mid:1\r\n"                                                                                  \
    "a=sendonly\r\n"                                                                               \
    "a=rtcp-mux\r\n"                                                                               \
    "a=rtcp-rsize\r\n"                                                                             \
    "a=rtpmap:96 VP8/90000\r\n"                                                                    \
    "a=rtpmap:97 rtx/90000\r\n"                                                                    \
    "a=fmtp:97 apt=96\r\n"                                                                         \
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"                                         \
    "c=IN IP4 0.0.0.0\r\n"                                                                         \
    "a=ice-ufrag:Wc3K\r\n"                                                                         \
    "a=ice-pwd:8y6Yl5Rz0mE7rQmMHqTcXv5h\r\n"                                                       \
    "a=fingerprint:sha-256 " FP_B "\r\n"                                                           \
    "a=setup:actpass\r\n"                                                                          \
    "a=mid:2\r\n"                                                                                  \
    "a=sctp-port:5000\r\n"                                                                         \
    "a=max-message-size:262144\r\n"

#endif
