/*
 * web_vcard — a card of the address book as vCard 3.0 (RFC 2426, what
 * RFC 6352 requires every server to offer) or 4.0 (RFC 6350).
 *
 * Users: FN, N, EMAIL when set, TEL from their number when set, their SIP
 * URI as IMPP (and X-SIP, which older clients read), a UID that never
 * changes. Groups: 4.0's KIND:group and MEMBER, or in 3.0 the
 * X-ADDRESSBOOKSERVER-KIND / -MEMBER extension that Apple, Thunderbird
 * and DAVx5 read. Values are escaped, and lines folded at 75 octets
 * without splitting a UTF-8 character.
 */
#include <string.h>

#include "web/web_priv.h"

/* Appends one content line, folded. */
static void vcard_line(struct strbuf *out, const char *line)
{
    size_t n = strlen(line), col = 0;
    for (size_t i = 0; i < n;) {
        /* length of the UTF-8 character at i */
        unsigned char ch = (unsigned char)line[i];
        size_t cl = ch < 0x80 ? 1 : (ch >> 5) == 6 ? 2 : (ch >> 4) == 14 ? 3 : 4;
        if (i + cl > n)
            cl = n - i;
        if (col + cl > 75) {
            strbuf_puts(out, "\r\n ");
            col = 1;
        }
        strbuf_append(out, line + i, cl);
        col += cl;
        i += cl;
    }
    strbuf_puts(out, "\r\n");
}

/* A text value with '\', ',', ';' and newlines escaped (RFC 6350 §3.4). */
static void vcard_escape(struct strbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '\\':
        case ',':
        case ';':
            strbuf_putc(b, '\\');
            strbuf_putc(b, *s);
            break;
        case '\n':
            strbuf_puts(b, "\\n");
            break;
        case '\r':
            break;
        default:
            strbuf_putc(b, *s);
        }
    }
}

static void vcard_prop(struct strbuf *out, const char *name, const char *value, bool escape)
{
    struct strbuf l = STRBUF_INIT;
    strbuf_puts(&l, name);
    strbuf_putc(&l, ':');
    if (escape)
        vcard_escape(&l, value);
    else
        strbuf_puts(&l, value);
    vcard_line(out, strbuf_cstr(&l));
    strbuf_free(&l);
}

/* N from a display name: the last word as the family name, the rest as
 * given names ("Alice Liddell" -> "Liddell;Alice;;;"). */
static void vcard_n(struct strbuf *out, const char *display)
{
    struct strbuf l = STRBUF_INIT;
    strbuf_puts(&l, "N:");
    const char *sp = strrchr(display, ' ');
    if (sp && sp[1]) {
        char given[STORE_DISPLAY_NAME_MAX + 1];
        size_t gl = (size_t)(sp - display);
        memcpy(given, display, gl);
        given[gl] = '\0';
        vcard_escape(&l, sp + 1);
        strbuf_putc(&l, ';');
        vcard_escape(&l, given);
    } else {
        vcard_escape(&l, display);
        strbuf_putc(&l, ';');
    }
    strbuf_puts(&l, ";;;");
    vcard_line(out, strbuf_cstr(&l));
    strbuf_free(&l);
}

void web_vcard_write(struct strbuf *out, const struct web_card *c, int version, const char *domain)
{
    bool v4 = version == 4;
    const char *fn = c->display_name[0] ? c->display_name : c->name;
    char buf[512];

    vcard_line(out, "BEGIN:VCARD");
    vcard_line(out, v4 ? "VERSION:4.0" : "VERSION:3.0");
    vcard_line(out, "PRODID:-//Parley//Address Book//EN");
    snprintf(buf, sizeof(buf), v4 ? "urn:uuid:%s" : "%s", c->uuid);
    vcard_prop(out, "UID", buf, false);
    vcard_prop(out, "FN", fn, true);
    if (c->kind == STORE_CARD_GROUP) {
        struct strbuf l = STRBUF_INIT;
        strbuf_puts(&l, "N:");
        vcard_escape(&l, fn);
        strbuf_puts(&l, ";;;;");
        vcard_line(out, strbuf_cstr(&l));
        strbuf_free(&l);
        vcard_line(out, v4 ? "KIND:group" : "X-ADDRESSBOOKSERVER-KIND:group");
        for (size_t i = 0; i < c->nmembers; i++) {
            snprintf(buf, sizeof(buf), "urn:uuid:%s", c->members[i]);
            vcard_prop(out, v4 ? "MEMBER" : "X-ADDRESSBOOKSERVER-MEMBER", buf, false);
        }
    } else {
        vcard_n(out, c->display_name[0] ? c->display_name : c->name);
        if (v4)
            vcard_line(out, "KIND:individual");
        vcard_prop(out, "NICKNAME", c->name, true);
        if (c->email[0])
            vcard_prop(out, v4 ? "EMAIL;TYPE=work" : "EMAIL;TYPE=INTERNET,WORK", c->email, false);
        if (c->number[0]) {
            if (v4) {
                snprintf(buf, sizeof(buf), "tel:%s", c->number);
                vcard_prop(out, "TEL;VALUE=uri;TYPE=work,voice", buf, false);
            } else {
                vcard_prop(out, "TEL;TYPE=WORK,VOICE", c->number, false);
            }
        }
        snprintf(buf, sizeof(buf), "sip:%s@%s", c->name, domain);
        vcard_prop(out, v4 ? "IMPP;PREF=1" : "IMPP;X-SERVICE-TYPE=SIP", buf, false);
        vcard_prop(out, "X-SIP", buf, false);
    }
    vcard_line(out, "END:VCARD");
}
