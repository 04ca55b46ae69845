#include "presence/pidf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "xml/xml.h"

static bool pidf_entity_matches(struct strview entity, const char *aor)
{
    static const char *const schemes[] = {"pres:", "sip:", "sips:"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(schemes[i]);
        if (entity.n == n + strlen(aor) && strncasecmp(entity.p, schemes[i], n) == 0 &&
            strncasecmp(entity.p + n, aor, strlen(aor)) == 0)
            return true;
    }
    return false;
}

/* The first RPID activity anywhere in the document (person, tuple or
 * device elements all may carry one). */
static void pidf_find_activity(const struct xml_node *n, struct pidf_state *out)
{
    for (const struct xml_node *c = n->first_child; c && !out->activity[0]; c = c->next) {
        if (strview_eq(c->ns, PIDF_NS_RPID) && strview_eq(c->local, "activities")) {
            for (const struct xml_node *a = c->first_child; a; a = a->next) {
                if (!strview_eq(a->ns, PIDF_NS_RPID) || strview_eq(a->local, "note"))
                    continue;
                strview_copy(a->local, out->activity, sizeof(out->activity));
                return;
            }
        }
        pidf_find_activity(c, out);
    }
}

int pidf_check(const char *body, size_t len, const char *aor, struct pidf_state *out, char *err,
               size_t errlen)
{
    struct xml_doc *doc = NULL;
    char xerr[96];
    int rc = xml_parse(body, len, &doc, xerr, sizeof(xerr));
    if (rc == -ENOMEM)
        return rc;
    if (rc) {
        snprintf(err, errlen, "malformed PIDF: %s", xerr);
        return -EINVAL;
    }
    memset(out, 0, sizeof(*out));
    struct xml_node *root = xml_root(doc);
    rc = -EINVAL;
    if (!strview_eq(root->ns, PIDF_NS) || !strview_eq(root->local, "presence")) {
        snprintf(err, errlen, "malformed PIDF: the root is not <presence> in %s", PIDF_NS);
        goto out;
    }
    const struct xml_attr *entity = xml_attr(root, "entity");
    if (!entity) {
        snprintf(err, errlen, "malformed PIDF: <presence> has no entity");
        goto out;
    }
    if (!pidf_entity_matches(entity->value, aor)) {
        snprintf(err, errlen, "PIDF entity does not name the publisher %s", aor);
        goto out;
    }
    for (struct xml_node *t = xml_child(root, PIDF_NS, "tuple"); t;
         t = xml_next(t, PIDF_NS, "tuple")) {
        if (!xml_attr(t, "id")) {
            snprintf(err, errlen, "malformed PIDF: a <tuple> has no id");
            goto out;
        }
        struct xml_node *status = xml_child(t, PIDF_NS, "status");
        if (!status) {
            snprintf(err, errlen, "malformed PIDF: a <tuple> has no <status>");
            goto out;
        }
        struct xml_node *basic = xml_child(status, PIDF_NS, "basic");
        if (basic) {
            struct strview v = xml_text_trimmed(basic);
            if (strview_eq(v, "open"))
                out->open = true;
            else if (!strview_eq(v, "closed")) {
                snprintf(err, errlen, "malformed PIDF: <basic> must be open or closed");
                goto out;
            }
        }
    }
    pidf_find_activity(root, out);
    rc = 0;
out:
    xml_free(doc);
    return rc;
}

int pidf_rank(const struct pidf_state *st)
{
    if (!st->open)
        return 0;
    if (st->activity[0] == '\0' || strcmp(st->activity, "unknown") == 0)
        return 3;
    if (strcmp(st->activity, "away") == 0 || strcmp(st->activity, "vacation") == 0 ||
        strcmp(st->activity, "sleeping") == 0 || strcmp(st->activity, "permanent-absence") == 0)
        return 1;
    return 2; /* busy, on-the-phone, meeting, ... */
}

void pidf_write(const char *aor, const struct pidf_state *st, struct strbuf *out)
{
    strbuf_printf(out,
                  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n"
                  "<presence xmlns=\"" PIDF_NS "\" xmlns:dm=\"" PIDF_NS_DM
                  "\" xmlns:rpid=\"" PIDF_NS_RPID "\" entity=\"pres:%s\">\r\n"
                  "<tuple id=\"parley\"><status><basic>%s</basic></status></tuple>\r\n",
                  aor, st->open ? "open" : "closed");
    if (st->activity[0])
        strbuf_printf(out,
                      "<dm:person id=\"p\"><rpid:activities><rpid:%s/></rpid:activities>"
                      "</dm:person>\r\n",
                      st->activity);
    strbuf_puts(out, "</presence>\r\n");
}
