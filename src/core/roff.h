/*
 * roff — text for manual pages (man(7) macros), escaped so that what a
 * table says is printed as it is: a backslash is not an escape, a line
 * does not start with a control character ('.' or '\''), and options
 * (--json, -c) are written with \- so that they are minus signs one can
 * copy and type, not typographic hyphens.
 *
 * The manual pages parleyd(8), parleyctl(8) and parley.conf(5) are printed
 * by the programs from the same tables as their --help and configuration;
 * these are the escapes they share.
 */
#ifndef PARLEY_CORE_ROFF_H
#define PARLEY_CORE_ROFF_H

#include "core/strbuf.h"

/* Appends prose: backslashes as \e, a '.' or '\'' at the start of a line
 * behind \&, every hyphen of a word that starts with '-' as \-, and a
 * `quoted` span in bold with all its hyphens as \- (the table's help texts
 * quote commands and values that way). */
void roff_text(struct strbuf *out, const char *text);

/* Appends something to be typed as it is (a key, a value, a command): as
 * roff_text, with every hyphen as \- and backquotes kept, and a place the
 * line may break (\:) after each ':' and ','. */
void roff_literal(struct strbuf *out, const char *text);

/* Appends the page's first lines: a comment that it is generated, and .TH
 * with the title, the section ("5", "8"), Parley's version and the
 * manual's name ("File Formats", "System Administration"). No date, so
 * that two builds of one version write the same page. Then no hyphenation
 * and a ragged right margin. */
void roff_title(struct strbuf *out, const char *title, const char *section, const char *manual);

#endif
