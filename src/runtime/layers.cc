#include "runtime/layers.h"
