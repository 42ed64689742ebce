#include "services/logs/logs.h"
