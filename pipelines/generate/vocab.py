"""Code systems, codes and displays used by the generated FHIR resources.

Codes come from redistributable code systems only (SNOMED CT, LOINC, CVX, RxNorm, UCUM and HL7
terminology), as the architecture requires. The CodeableConcept dicts built here are shared by every
resource that uses them: they are never mutated (defect injection works on deep copies).
"""

from __future__ import annotations

from typing import Any

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
CVX = "http://hl7.org/fhir/sid/cvx"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
NPI = "http://hl7.org/fhir/sid/us-npi"
SSN = "http://hl7.org/fhir/sid/us-ssn"
MRN_A = "http://hospital-a.example.org/fhir/sid/mrn"
MRN_B = "http://clinic-b.example.org/mrn"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
CONTACT_CHANNEL = "urn:patient-insights:contact-channel"
BCP47 = "urn:ietf:bcp:47"

Json = dict[str, Any]


def coding(system: str, code: str, display: str) -> Json:
    """A Coding."""
    return {"system": system, "code": code, "display": display}


def cc(system: str, code: str, display: str, text: str | None = None) -> Json:
    """A CodeableConcept with one coding (and `text`, when given)."""
    concept: Json = {"coding": [coding(system, code, display)]}
    if text:
        concept["text"] = text
    return concept


# --- Encounter --------------------------------------------------------------------------------------
ENCOUNTER_CLASS = {
    "AMB": coding(ACT_CODE, "AMB", "ambulatory"),
    "EMER": coding(ACT_CODE, "EMER", "emergency"),
    "IMP": coding(ACT_CODE, "IMP", "inpatient encounter"),
}
ENCOUNTER_TYPE = {
    "wellness_adult": cc(SNOMED, "185349003", "Encounter for check up (procedure)"),
    "wellness_child": cc(SNOMED, "410620009", "Well child visit (procedure)"),
    "symptom": cc(SNOMED, "185345009", "Encounter for symptom (procedure)"),
    "followup": cc(SNOMED, "390906007", "Follow-up encounter (procedure)"),
    "procedure": cc(SNOMED, "371883000", "Outpatient procedure (procedure)"),
    "emergency": cc(SNOMED, "50849002", "Emergency room admission (procedure)"),
    "inpatient": cc(SNOMED, "32485007", "Hospital admission (procedure)"),
    "inpatient_from_ed": cc(SNOMED, "183452005", "Emergency hospital admission (procedure)"),
}
PARTICIPANT_ATTENDER = [cc("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "ATND", "attender")]
ADMIT_SOURCE = {
    "emd": cc(
        "http://terminology.hl7.org/CodeSystem/admit-source", "emd", "From accident/emergency department"
    ),
    "gp": cc("http://terminology.hl7.org/CodeSystem/admit-source", "gp", "General Practitioner referral"),
    "outp": cc("http://terminology.hl7.org/CodeSystem/admit-source", "outp", "From outpatient department"),
}
_DD = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
DISCHARGE = {
    "home": cc(_DD, "home", "Home"),
    "alt-home": cc(_DD, "alt-home", "Alternative home"),
    "other-hcf": cc(_DD, "other-hcf", "Other healthcare facility"),
    "hosp": cc(_DD, "hosp", "Hospice"),
    "aadvice": cc(_DD, "aadvice", "Left against advice"),
    "exp": cc(_DD, "exp", "Expired"),
    "rehab": cc(_DD, "rehab", "Rehabilitation"),
    "snf": cc(_DD, "snf", "Skilled nursing facility"),
}
ACUTE_REASONS = [
    cc(SNOMED, "29857009", "Chest pain (finding)"),
    cc(SNOMED, "21522001", "Abdominal pain (finding)"),
    cc(SNOMED, "267036007", "Dyspnea (finding)"),
    cc(SNOMED, "386661006", "Fever (finding)"),
    cc(SNOMED, "422587007", "Nausea (finding)"),
    cc(SNOMED, "25064002", "Headache (finding)"),
    cc(SNOMED, "161891005", "Backache (finding)"),
]
HYPERGLYCEMIA = cc(SNOMED, "80394007", "Hyperglycemia (disorder)")
HYPOGLYCEMIA = cc(SNOMED, "302866003", "Hypoglycemia (disorder)")
COPD_EXACERBATION = cc(
    SNOMED, "195951007", "Acute exacerbation of chronic obstructive airways disease (disorder)"
)

# --- Condition --------------------------------------------------------------------------------------
_CLIN = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CLINICAL_STATUS = {s: cc(_CLIN, s, s.capitalize()) for s in ("active", "resolved", "inactive", "remission")}
VERIFICATION_CONFIRMED = cc(
    "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"
)
CONDITION_CATEGORY = {
    "problem": [
        cc(
            "http://terminology.hl7.org/CodeSystem/condition-category",
            "problem-list-item",
            "Problem List Item",
        )
    ],
    "diagnosis": [
        cc(
            "http://terminology.hl7.org/CodeSystem/condition-category",
            "encounter-diagnosis",
            "Encounter Diagnosis",
        )
    ],
}
CONDITIONS: dict[str, list[Json]] = {
    # key -> alternative codings (a source uses one of them consistently)
    "diabetes": [cc(SNOMED, "44054006", "Diabetes mellitus type 2 (disorder)")],
    "hypertension": [
        cc(SNOMED, "59621000", "Essential hypertension (disorder)"),
        cc(SNOMED, "38341003", "Hypertensive disorder, systemic arterial (disorder)"),
    ],
    "chf": [
        cc(SNOMED, "42343007", "Congestive heart failure (disorder)"),
        cc(SNOMED, "88805009", "Chronic congestive heart failure (disorder)"),
    ],
    "copd": [cc(SNOMED, "13645005", "Chronic obstructive lung disease (disorder)")],
    "ckd3": [cc(SNOMED, "433144002", "Chronic kidney disease stage 3 (disorder)")],
    "ckd4": [cc(SNOMED, "431857002", "Chronic kidney disease stage 4 (disorder)")],
    "esrd": [cc(SNOMED, "46177005", "End-stage renal disease (disorder)")],
    "asthma": [cc(SNOMED, "195967001", "Asthma (disorder)")],
    "breast_cancer": [cc(SNOMED, "254837009", "Malignant neoplasm of breast (disorder)")],
    "colon_cancer": [cc(SNOMED, "363406005", "Malignant neoplasm of colon (disorder)")],
    "depression": [
        cc(SNOMED, "35489007", "Depressive disorder (disorder)"),
        cc(SNOMED, "370143000", "Major depressive disorder (disorder)"),
    ],
    "hyperlipidemia": [cc(SNOMED, "55822004", "Hyperlipidemia (disorder)")],
    "obesity": [
        cc(SNOMED, "414916001", "Obesity (disorder)"),
        cc(SNOMED, "162864005", "Body mass index 30+ - obesity (finding)"),
    ],
    "hypermetropia": [cc(SNOMED, "56530002", "Hypermetropia (disorder)")],
    "prediabetes": [cc(SNOMED, "714628002", "Prediabetes (finding)")],
    "dementia": [
        cc(SNOMED, "52448006", "Dementia (disorder)"),
        cc(SNOMED, "26929004", "Alzheimer's disease (disorder)"),
    ],
    "frailty": [cc(SNOMED, "248279007", "Frailty (finding)")],
    "pregnancy": [cc(SNOMED, "72892002", "Normal pregnancy (finding)")],
}

# --- Observation ------------------------------------------------------------------------------------
_OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
VITAL_SIGNS = [cc(_OBS_CAT, "vital-signs", "Vital Signs")]
LABORATORY = [cc(_OBS_CAT, "laboratory", "Laboratory")]
BP_PANEL = cc(LOINC, "85354-9", "Blood pressure panel with all children optional")
BP_PANEL_OLD = cc(LOINC, "55284-4", "Blood pressure systolic and diastolic")
SYSTOLIC = cc(LOINC, "8480-6", "Systolic blood pressure")
DIASTOLIC = cc(LOINC, "8462-4", "Diastolic blood pressure")
HEART_RATE = cc(LOINC, "8867-4", "Heart rate")
BODY_WEIGHT = cc(LOINC, "29463-7", "Body weight")
BODY_HEIGHT = cc(LOINC, "8302-2", "Body height")
BMI = cc(LOINC, "39156-5", "Body mass index (BMI) [Ratio]")
HBA1C = cc(LOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood")
LDL_DIRECT = cc(LOINC, "18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay")
LDL_CALC = cc(LOINC, "13457-7", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation")
EGFR_MDRD = cc(
    LOINC,
    "33914-3",
    "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or Plasma "
    "by Creatinine-based formula (MDRD)",
)
EGFR_CKD_EPI = cc(
    LOINC,
    "62238-1",
    "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or Plasma "
    "by Creatinine-based formula (CKD-EPI)",
)
GLUCOSE = cc(LOINC, "2345-7", "Glucose [Mass/volume] in Serum or Plasma")
_INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
INTERPRETATION = {
    "H": [cc(_INTERP, "H", "High")],
    "L": [cc(_INTERP, "L", "Low")],
    "N": [cc(_INTERP, "N", "Normal")],
}

# --- Procedure --------------------------------------------------------------------------------------
PROCEDURES = {
    "mammography": cc(SNOMED, "71651007", "Mammography (procedure)"),
    "screening_mammography": cc(SNOMED, "24623002", "Screening mammography (procedure)"),
    "colonoscopy": cc(SNOMED, "73761001", "Colonoscopy (procedure)"),
    "fobt": cc(SNOMED, "104435004", "Screening for occult blood in feces (procedure)"),
    "cervical_cytology": cc(SNOMED, "171149006", "Screening for malignant neoplasm of cervix (procedure)"),
    "retinal_exam": cc(SNOMED, "134395001", "Diabetic retinopathy screening (procedure)"),
    "eye_exam": cc(SNOMED, "36228007", "Ophthalmic examination and evaluation (procedure)"),
    "bilateral_mastectomy": cc(SNOMED, "27865001", "Bilateral mastectomy (procedure)"),
    "total_colectomy": cc(SNOMED, "26390003", "Total colectomy (procedure)"),
    "hysterectomy": cc(SNOMED, "116140006", "Total hysterectomy (procedure)"),
}

# --- Immunization (CVX) -----------------------------------------------------------------------------
VACCINES = {
    "hepb": cc(CVX, "08", "Hep B, adolescent or pediatric"),
    "dtap": cc(CVX, "20", "DTaP"),
    "ipv": cc(CVX, "10", "IPV"),
    "hib": cc(CVX, "49", "Hib (PRP-OMP)"),
    "pcv13": cc(CVX, "133", "Pneumococcal conjugate PCV 13"),
    "rota": cc(CVX, "116", "rotavirus, pentavalent"),
    "mmr": cc(CVX, "03", "MMR"),
    "varicella": cc(CVX, "21", "varicella"),
    "hepa": cc(CVX, "83", "Hep A, ped/adol, 2 dose"),
    "tdap": cc(CVX, "115", "Tdap"),
    "hpv": cc(CVX, "165", "HPV9"),
    "mcv4": cc(CVX, "114", "meningococcal MCV4P"),
    "flu": cc(CVX, "150", "Influenza, injectable, quadrivalent, preservative free"),
    "flu_mdv": cc(CVX, "158", "influenza, injectable, quadrivalent, contains preservative"),
    "flu_hd": cc(CVX, "197", "influenza, high-dose, quadrivalent"),
    "ppsv23": cc(CVX, "33", "pneumococcal polysaccharide vaccine, 23 valent"),
    "pcv20": cc(CVX, "216", "Pneumococcal conjugate PCV 20"),
    "covid_pfizer": cc(CVX, "208", "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose"),
    "covid_moderna": cc(CVX, "207", "COVID-19, mRNA, LNP-S, PF, 100 mcg/0.5mL dose or 50 mcg/0.25mL dose"),
    "covid_unspecified": cc(CVX, "213", "SARS-COV-2 (COVID-19) vaccine, UNSPECIFIED FORMULATION"),
}
CHILD_SCHEDULE: list[tuple[int, tuple[str, ...]]] = [
    # (age in months, vaccines given at that well-child visit)
    (0, ("hepb",)),
    (2, ("hepb", "dtap", "ipv", "hib", "pcv13", "rota")),
    (4, ("dtap", "ipv", "hib", "pcv13", "rota")),
    (6, ("hepb", "dtap", "ipv", "pcv13", "rota")),
    (12, ("hib", "pcv13", "mmr", "varicella", "hepa")),
    (15, ("dtap",)),
    (18, ("hepa",)),
    (48, ("dtap", "ipv", "mmr", "varicella")),
    (132, ("tdap", "hpv", "mcv4")),
    (138, ("hpv",)),
    (192, ("mcv4",)),
]

# --- MedicationRequest (RxNorm) ---------------------------------------------------------------------
MEDICATIONS = {
    "atorvastatin40": cc(RXNORM, "617311", "atorvastatin 40 MG Oral Tablet"),
    "atorvastatin80": cc(RXNORM, "259255", "atorvastatin 80 MG Oral Tablet"),
    "simvastatin20": cc(RXNORM, "312961", "simvastatin 20 MG Oral Tablet"),
    "lisinopril10": cc(RXNORM, "314076", "lisinopril 10 MG Oral Tablet"),
    "amlodipine5": cc(RXNORM, "197361", "amlodipine 5 MG Oral Tablet"),
    "losartan50": cc(RXNORM, "979492", "losartan potassium 50 MG Oral Tablet"),
    "hctz25": cc(RXNORM, "310798", "hydrochlorothiazide 25 MG Oral Tablet"),
    "metformin500er": cc(
        RXNORM, "860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"
    ),
    "insulin7030": cc(
        RXNORM,
        "106892",
        "insulin isophane, human 70 UNT/ML / insulin, regular, human 30 UNT/ML Injectable Suspension",
    ),
    "albuterol_mdi": cc(RXNORM, "745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"),
    "albuterol_neb": cc(RXNORM, "630208", "albuterol 0.83 MG/ML Inhalation Solution"),
    "fluoxetine20": cc(RXNORM, "310385", "fluoxetine 20 MG Oral Capsule"),
}
DOSAGE_TEXT = {
    "atorvastatin40": "Take 1 tablet by mouth once daily at bedtime",
    "atorvastatin80": "Take 1 tablet by mouth once daily",
    "simvastatin20": "Take 1 tablet by mouth every evening",
    "lisinopril10": "Take 1 tablet by mouth once daily",
    "amlodipine5": "Take 1 tablet by mouth once daily",
    "losartan50": "Take 1 tablet by mouth once daily",
    "hctz25": "Take 1 tablet by mouth every morning",
    "metformin500er": "Take 2 tablets by mouth with evening meal",
    "insulin7030": "Inject 20 units under the skin twice daily before meals",
    "albuterol_mdi": "Inhale 2 puffs every 4 to 6 hours as needed for wheezing",
    "albuterol_neb": "Inhale 1 vial via nebulizer every 6 hours as needed",
    "fluoxetine20": "Take 1 capsule by mouth once daily",
}

# --- Coverage, Consent, Appointment, Communication --------------------------------------------------
_SOPT = "https://nahdo.org/sopt"
COVERAGE_TYPE = {
    "medicare": cc(_SOPT, "1", "MEDICARE"),
    "medicaid": cc(_SOPT, "2", "MEDICAID"),
    "commercial": cc(_SOPT, "5", "PRIVATE HEALTH INSURANCE"),
}
_REL = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
SUBSCRIBER_RELATIONSHIP = {
    "self": cc(_REL, "self", "Self"),
    "child": cc(_REL, "child", "Child"),
    "spouse": cc(_REL, "spouse", "Spouse"),
}
CONSENT_SCOPE = cc("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy", "Privacy Consent")
CONSENT_CATEGORY = [cc(LOINC, "59284-0", "Patient Consent")]
CONSENT_POLICY_RULE = cc(ACT_CODE, "OPTOUT", "opt-out")
CONTACT_CHANNELS = {
    "email": cc(CONTACT_CHANNEL, "email", "Email"),
    "sms": cc(CONTACT_CHANNEL, "sms", "SMS text message"),
    "phone": cc(CONTACT_CHANNEL, "phone", "Telephone call"),
    "mail": cc(CONTACT_CHANNEL, "mail", "Postal mail"),
    "all": cc(CONTACT_CHANNEL, "all", "All contact channels"),
}
_APPT_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0276"
APPOINTMENT_TYPE = {
    "ROUTINE": cc(_APPT_TYPE, "ROUTINE", "Routine appointment - default if not valued"),
    "FOLLOWUP": cc(_APPT_TYPE, "FOLLOWUP", "A follow up visit from a previous appointment"),
    "CHECKUP": cc(_APPT_TYPE, "CHECKUP", "A routine check-up, such as an annual physical"),
}
CANCELLATION_REASON = {
    "pat": cc("http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason", "pat", "Patient"),
    "prov": cc("http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason", "prov", "Provider"),
}
_COMM_CAT = "http://terminology.hl7.org/CodeSystem/communication-category"
COMMUNICATION_CATEGORY = {
    "reminder": [cc(_COMM_CAT, "reminder", "Reminder")],
    "notification": [cc(_COMM_CAT, "notification", "Notification")],
}
_MODE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
COMMUNICATION_MEDIUM = {
    "email": [cc(_MODE, "EMAILWRIT", "email")],
    "sms": [cc(_MODE, "SMSWRIT", "SMS message")],
    "phone": [cc(_MODE, "PHONE", "telephone")],
    "mail": [cc(_MODE, "MAILWRIT", "mail")],
}
LANGUAGES = {
    "en": cc(BCP47, "en", "English"),
    "es": cc(BCP47, "es", "Spanish"),
    "zh": cc(BCP47, "zh", "Chinese"),
    "vi": cc(BCP47, "vi", "Vietnamese"),
}
CONTACT_RELATIONSHIP = {
    "MTH": [cc(ROLE_CODE, "MTH", "mother")],
    "FTH": [cc(ROLE_CODE, "FTH", "father")],
    "PRN": [cc(ROLE_CODE, "PRN", "parent")],
    "GRD": [cc(ROLE_CODE, "GRD", "guardian")],
}
MRN_TYPE = cc(V2_0203, "MR", "Medical record number")
SSN_TYPE = cc(V2_0203, "SS", "Social Security number")
QUALIFICATION = {
    "MD": cc("http://terminology.hl7.org/CodeSystem/v2-0360", "MD", "Doctor of Medicine"),
    "DO": cc("http://terminology.hl7.org/CodeSystem/v2-0360", "DO", "Doctor of Osteopathy"),
    "NP": cc("http://terminology.hl7.org/CodeSystem/v2-0360", "NP", "Nurse practitioner"),
}
_ORG_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
ORGANIZATION_TYPE = {
    "prov": [cc(_ORG_TYPE, "prov", "Healthcare Provider")],
    "dept": [cc(_ORG_TYPE, "dept", "Hospital Department")],
    "pay": [cc(_ORG_TYPE, "pay", "Payer")],
}
