// Fixture of the layering test: a lower module reaching up (the violation).
#pragma once
#include "high/high.h"
