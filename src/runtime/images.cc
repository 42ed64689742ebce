#include "runtime/images.h"
