/** Byte units for the schema's defaults. */
export const KIB = 1024;
export const MIB = 1024 * KIB;
