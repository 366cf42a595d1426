/* blockrelay — unit tests for the small helpers of src/util.c.
 *
 * br_escape_text() gets a table of inputs (control characters, log-line
 * injection, terminal escapes, bytes above 0x7f, backslashes, embedded
 * NULs, the length bound) and of buffer sizes around the cut, each row one
 * behaviour; then properties checked over every byte and every buffer
 * size: the result is printable ASCII, NUL-terminated within the buffer,
 * never written past it, cut only between escapes, and decodes back to
 * the input when it was not cut.  A text without a NUL is read no further
 * than its length (in a buffer of exactly that size, for ASan).
 *
 * br_pread_full / br_pwrite_full: a write across several of the zero
 * buffer's lengths, a read back, and a read past the end (-EIO).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "util.h"

/* TEXT as a byte array: its length counts embedded NULs. */
#define BYTES(text) (text), sizeof (text) - 1

static const struct {
  const char *text;
  size_t len;                   /* bytes of text given */
  size_t size;                  /* of the output buffer */
  const char *want;
} escapes[] = {
  /* Printable ASCII is copied as is. */
  { BYTES ("site-b"), 64, "site-b" },
  { BYTES (""), 64, "" },
  { BYTES (" ~!\"#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}"), 64,
    " ~!\"#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}" },
  /* Backslash is doubled, so a literal "\x41" cannot pass for an escape. */
  { BYTES ("a\\b"), 64, "a\\\\b" },
  { BYTES ("\\x41"), 64, "\\\\x41" },
  { BYTES ("\\"), 64, "\\\\" },
  /* Control characters: a forged log line, a terminal escape, DEL. */
  { BYTES ("ok\n12:00:00.000 blockrelay[1] info: in sync"), 128,
    "ok\\x0a12:00:00.000 blockrelay[1] info: in sync" },
  { BYTES ("\r\t\b\f\v\a"), 64, "\\x0d\\x09\\x08\\x0c\\x0b\\x07" },
  { BYTES ("\x1b[2J\x1b]0;owned\x07"), 64,
    "\\x1b[2J\\x1b]0;owned\\x07" },
  { BYTES ("\x01\x1f\x7f"), 64, "\\x01\\x1f\\x7f" },
  /* Bytes above 0x7f, UTF-8 or not, lower-case hex. */
  { BYTES ("caf\xc3\xa9"), 64, "caf\\xc3\\xa9" },
  { BYTES ("\x80\xff\xAB"), 64, "\\x80\\xff\\xab" },
  /* The text ends at a NUL or after LEN bytes, whichever comes first;
   * neither is a cut. */
  { BYTES ("ab\0cd"), 64, "ab" },
  { BYTES ("\0x"), 64, "" },
  { "abcdef", 3, 64, "abc" },
  { "a\nbcdef", 2, 64, "a\\x0a" },
  { "abc", 0, 64, "" },
  /* Exactly fitting (escape and NUL) is no cut. */
  { BYTES ("abcdef"), 7, "abcdef" },
  { BYTES ("a\n"), 6, "a\\x0a" },
  { BYTES ("\\\\"), 5, "\\\\\\\\" },
  /* One byte short: cut, with "..." in the room it leaves. */
  { BYTES ("abcdef"), 6, "ab..." },
  { BYTES ("abcdef"), 5, "a..." },
  { BYTES ("abcdef"), 4, "..." },
  { BYTES ("a\n"), 5, "a..." },
  /* A cut never splits an escape: "\x0a" takes 4 bytes or none. */
  { BYTES ("\n\n\n"), 11, "\\x0a..." },
  { BYTES ("\n\n\n"), 12, "\\x0a\\x0a..." },
  { BYTES ("\n\n\n"), 13, "\\x0a\\x0a\\x0a" },
  /* ... nor "\\": 3 bytes of room before "..." hold "xy" and not the
   * backslash's two. */
  { BYTES ("xy\\zzzz"), 7, "xy..." },
  { BYTES ("xy\\zzzz"), 8, "xy\\\\..." },
  /* Buffers too small for the whole marker keep what fits of it. */
  { BYTES ("abcdef"), 3, ".." },
  { BYTES ("abcdef"), 2, "." },
  { BYTES ("abcdef"), 1, "" },
  { BYTES ("a"), 1, "" },
  { BYTES (""), 1, "" },
};

START_TEST (test_escape_table)
{
  char buf[256];

  ck_assert_uint_le (escapes[_i].size, sizeof buf);
  memset (buf, '#', sizeof buf);
  ck_assert_ptr_eq (br_escape_text (buf, escapes[_i].size, escapes[_i].text,
                                    escapes[_i].len), buf);
  ck_assert_str_eq (buf, escapes[_i].want);
  /* Nothing written past the buffer. */
  for (size_t i = escapes[_i].size; i < sizeof buf; i++)
    ck_assert_int_eq (buf[i], '#');
}
END_TEST

/* Read an escaped text back into OUT; returns its length, or -1 if TEXT
 * is not something br_escape_text produces. */
static int
decode (const char *text, unsigned char *out)
{
  int n = 0;
  unsigned v;

  while (*text) {
    if ((unsigned char) *text < 0x20 || (unsigned char) *text >= 0x7f)
      return -1;
    if (*text != '\\')
      out[n++] = *text++;
    else if (text[1] == '\\') {
      out[n++] = '\\';
      text += 2;
    }
    else if (text[1] == 'x' && strspn (text + 2, "0123456789abcdef") >= 2 &&
             sscanf (text + 2, "%2x", &v) == 1) {
      out[n++] = v;
      text += 4;
    }
    else
      return -1;
  }
  return n;
}

/* Every byte but NUL alone, then all 255 in one text: printable, and
 * read back exactly; a BR_ESCAPED_SIZE buffer never cuts. */
START_TEST (test_escape_every_byte)
{
  char buf[BR_ESCAPED_SIZE (255)], all[255];
  unsigned char back[255];

  for (int c = 1; c < 256; c++) {
    char in = c;

    br_escape_text (buf, BR_ESCAPED_SIZE (1), &in, 1);
    ck_assert_int_eq (decode (buf, back), 1);
    ck_assert_int_eq (back[0], c);
    ck_assert_uint_eq (strlen (buf),
                       c == '\\' ? 2 : c >= 0x20 && c < 0x7f ? 1 : 4);
    all[c - 1] = c;
  }
  br_escape_text (buf, sizeof buf, all, sizeof all);
  ck_assert_ptr_null (strstr (buf, "..."));
  ck_assert_int_eq (decode (buf, back), 255);
  ck_assert_mem_eq (back, all, 255);
}
END_TEST

/* Worst case: LEN bytes that all need "\xNN" fit in BR_ESCAPED_SIZE(LEN)
 * and not in one byte less. */
START_TEST (test_escaped_size_bound)
{
  char in[64], buf[BR_ESCAPED_SIZE (64)];

  memset (in, 0xff, sizeof in);
  br_escape_text (buf, sizeof buf, in, sizeof in);
  ck_assert_uint_eq (strlen (buf), 4 * sizeof in);
  ck_assert_ptr_null (strstr (buf, "..."));
  br_escape_text (buf, sizeof buf - 1, in, sizeof in);
  ck_assert_uint_eq (strlen (buf), 4 * (sizeof in - 1) + 3);
  ck_assert_str_eq (buf + strlen (buf) - 3, "...");
}
END_TEST

/* Every buffer size from 0 to past the whole text: terminated inside the
 * buffer, nothing written beyond it, and either the whole escaped text or
 * a prefix of it that ends between escapes, followed by the part of
 * "..." that fits. */
START_TEST (test_escape_every_size)
{
  static const char text[] = "a\\b\n\xffz";
  char full[64], buf[64];
  size_t full_len, size;

  br_escape_text (full, sizeof full, text, sizeof text - 1);
  ck_assert_str_eq (full, "a\\\\b\\x0a\\xffz");
  full_len = strlen (full);
  for (size = 0; size <= full_len + 2; size++) {
    size_t n;
    unsigned char back[64];
    char prefix[64];

    memset (buf, '#', sizeof buf);
    br_escape_text (buf, size, text, sizeof text - 1);
    for (size_t i = size; i < sizeof buf; i++)
      ck_assert_msg (buf[i] == '#', "size %zu: byte %zu written", size, i);
    if (size == 0)
      continue;
    n = strlen (buf);
    ck_assert_uint_lt (n, size);
    if (size > full_len) {
      ck_assert_str_eq (buf, full);
      continue;
    }
    /* Cut: PREFIX... with PREFIX whole escapes of the full text. */
    n = strcspn (buf, ".");
    ck_assert_msg (strncmp (buf, full, n) == 0, "size %zu: '%s'", size, buf);
    memcpy (prefix, buf, n);
    prefix[n] = '\0';
    ck_assert_msg (decode (prefix, back) >= 0, "size %zu: '%s' splits an "
                   "escape", size, buf);
    ck_assert_uint_eq (strlen (buf + n), size - 1 < 3 ? size - 1 : 3);
    ck_assert_msg (strspn (buf + n, ".") == strlen (buf + n),
                   "size %zu: '%s'", size, buf);
    /* The longest such prefix: the next escape would not fit with the
     * marker. */
    if (size - 1 < 3)
      ck_assert_uint_eq (n, 0);
    else
      ck_assert_uint_gt (n + (full[n] != '\\' ? 1 : full[n + 1] == '\\'
                              ? 2 : 4), size - 1 - 3);
  }
}
END_TEST

/* A text that is not NUL-terminated is read no further than LEN. */
START_TEST (test_escape_unterminated)
{
  char *text = malloc (5), buf[32];

  ck_assert_ptr_nonnull (text);
  memcpy (text, "peer\x1b", 5);
  ck_assert_str_eq (br_escape_text (buf, sizeof buf, text, 5), "peer\\x1b");
  free (text);
}
END_TEST

/* A write of 200000 bytes of zeros (three passes of the 64K buffer and a
 * tail) over data, a write of data after it, both read back whole; a read
 * that runs past the end of the file is -EIO; a bad fd is -EBADF. */
START_TEST (test_full_io)
{
  char path[] = "/tmp/br-util-XXXXXX";
  int fd = mkstemp (path);
  static uint8_t buf[200000], back[200000 + 16];

  ck_assert_int_ge (fd, 0);
  unlink (path);
  memset (buf, 0x5a, sizeof buf);
  ck_assert_int_eq (br_pwrite_full (fd, buf, sizeof buf, 0), 0);
  ck_assert_int_eq (br_pwrite_full (fd, NULL, sizeof buf, 0), 0);
  ck_assert_int_eq (br_pwrite_full (fd, "tail", 4, sizeof buf), 0);
  ck_assert_int_eq (br_pread_full (fd, back, sizeof buf + 4, 0), 0);
  for (size_t i = 0; i < sizeof buf; i++)
    ck_assert_msg (back[i] == 0, "byte %zu not zeroed", i);
  ck_assert_int_eq (memcmp (back + sizeof buf, "tail", 4), 0);
  ck_assert_int_eq (br_pread_full (fd, back, 16, sizeof buf), -EIO);
  close (fd);
  ck_assert_int_eq (br_pread_full (fd, back, 1, 0), -EBADF);
  ck_assert_int_eq (br_pwrite_full (fd, buf, 1, 0), -EBADF);
}
END_TEST

#define LOOP(tc, fn, table) \
  tcase_add_loop_test ((tc), (fn), 0, sizeof (table) / sizeof (table)[0])

static Suite *
util_suite (void)
{
  Suite *s = suite_create ("util");
  TCase *esc = tcase_create ("escape");

  LOOP (esc, test_escape_table, escapes);
  tcase_add_test (esc, test_escape_every_byte);
  tcase_add_test (esc, test_escaped_size_bound);
  tcase_add_test (esc, test_escape_every_size);
  tcase_add_test (esc, test_escape_unterminated);
  suite_add_tcase (s, esc);
  TCase *io = tcase_create ("full-io");
  tcase_add_test (io, test_full_io);
  suite_add_tcase (s, io);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (util_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
