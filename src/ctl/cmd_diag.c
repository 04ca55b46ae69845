/* parleyctl diag (placeholder while written) */
#include "ctl/ctl.h"

int cmd_diag(struct ctl *ctl)
{
    return ctl_fail(ctl, "not yet");
}
