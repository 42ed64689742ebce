#include "runtime/container.h"
