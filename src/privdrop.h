/* blockrelay — dropping root privileges (blockrelayd --user, settings.user).
 * See privdrop.c. */
#ifndef BR_PRIVDROP_H
#define BR_PRIVDROP_H

#include <stddef.h>

/* Become USER (its uid, its primary group and its supplementary groups
 * from the group database), after chowning the control socket at
 * CONTROL_PATH (may be NULL) to it.  Returns 0, or a negative errno with
 * a message in ERR. */
int br_drop_privileges (const char *user, const char *control_path,
                        char *err, size_t errlen);

#endif
