// Status and Result live in the public API (include/dsv4/status.h); the library includes them
// through this header, which also brings the invariant checks (check.h) its code uses with them.
#pragma once

#include "core/check.h"
#include "dsv4/status.h"
